import Machine

/// Runs a configured machine to completion and returns the process exit status.
enum MachineRunner {
    static func run(_ config: MachineConfiguration) throws -> Int32 {
        for w in config.warnings { printError("vmm: warning: \(w)") }
        guard config.kernel != nil else {
            throw ConfigurationError("no kernel given (-kernel FILE)")
        }
        throw ConfigurationError("the pc machine is not available in this build yet")
    }
}
