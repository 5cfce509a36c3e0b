import ArgumentParser
import Logging
import Machine
import VMMSys
#if canImport(Glibc)
import Glibc
#endif

@main
enum Entry {
    /// Runs the command; any user error becomes one line on stderr and exit status 1
    /// (QEMU's convention), never a trap or a usage dump.
    static func main() {
        StartupTrace.mark("main")
        if StartupTrace.enabled { atexit { StartupTrace.finish() } }
        // `-version` alone answers before anything else is set up: the cheapest possible run
        // (README: start-up figures; `vmm bench startup` measures its peak RSS).
        if CommandLine.arguments.count == 2, ["-version", "--version"].contains(CommandLine.arguments[1]) {
            writeStandardOutputDirectly(versionText)
            exit(0)
        }
        // A closed output pipe must not kill the VMM (QEMU ignores SIGPIPE too); writes then
        // just fail.
        signal(SIGPIPE, SIG_IGN)
        // Logs go to stderr; VMM_LOG=debug|info|warning|error sets the level (default warning,
        // so a normal run prints only the guest's serial output, as QEMU does).
        let level = HostEnvironment.value("VMM_LOG").flatMap { Logger.Level(rawValue: $0) } ?? .warning
        LoggingSystem.bootstrap { label in
            var h = StreamLogHandler.standardError(label: label)
            h.logLevel = level
            return h
        }
        let arguments = Array(CommandLine.arguments.dropFirst())
        if let first = arguments.first, VMMCommand.subcommandNames.contains(first) {
            runSubcommand(arguments)
        }
        do {
            if arguments.first == "run" {
                exit(try run(native: Array(arguments.dropFirst())))
            }
            exit(try run(qemu: arguments))
        } catch let status as ExitStatus {
            exit(status.code)
        } catch {
            printError("vmm: \(error)")
            exit(1)
        }
    }

    /// `vmm mtree …`, `vmm bench …`: ArgumentParser commands.
    static func runSubcommand(_ arguments: [String]) -> Never {
        do {
            var command = try VMMCommand.parseAsRoot(arguments)
            try command.run()
            exit(0)
        } catch let status as ExitStatus {
            exit(status.code)
        } catch {
            if VMMCommand.exitCode(for: error) == .success { VMMCommand.exit(withError: error) }
            let message = VMMCommand.fullMessage(for: error).split(separator: "\n").first.map(String.init) ?? "\(error)"
            printError("vmm: \(message.hasPrefix("Error: ") ? String(message.dropFirst(7)) : message)")
            exit(1)
        }
    }

    /// The QEMU form: a kernel runs; nothing runs the main job (the doorbell benchmark).
    static func run(qemu arguments: [String]) throws -> Int32 {
        let parsed = try QEMUCommandLine.parse(arguments)
        if let text = informational(parsed) {
            writeOut(text)
            return 0
        }
        // A machine option runs the machine (firmware when there is no -kernel, as QEMU);
        // nothing but -n/-json runs the main job.
        if !parsed.mainJobOnly {
            let config = try MachineConfiguration(qemu: parsed.arguments)
            StartupTrace.mark("configured")
            return try MachineRunner.run(config)
        }
        try MainJob.run(writes: UInt64(parsed.writes ?? 100_000), json: parsed.json)
        return 0
    }

    /// `vmm run --kernel K …`: the same options, with no default devices but COM1 on stdio.
    static func run(native arguments: [String]) throws -> Int32 {
        var parsed = try QEMUCommandLine.parse(arguments)
        if let text = informational(parsed) {
            writeOut(text)
            return 0
        }
        parsed.arguments.nodefaults = true
        if parsed.arguments.serial.isEmpty { parsed.arguments.serial = ["stdio"] }
        // Without --kernel the machine runs firmware, as the QEMU form does.
        return try MachineRunner.run(try MachineConfiguration(qemu: parsed.arguments))
    }

    /// What `-help`, `-version` and `-device help` print instead of running.
    /// What `-version` prints.
    static var versionText: String {
        "vmm version \(VMMVersion.current) (swift-vmm; QEMU \(VMMVersion.qemuCompatibility)-compatible command line)\n"
    }

    static func informational(_ parsed: QEMUCommandLine.Parsed) -> String? {
        if parsed.help {
            return QEMUCommandLine.helpText() + """

                vmm's own commands:
                vmm                         run the bundled doorbell guest and print each path's cost (-n N, -json)
                vmm run --kernel K ...      the same options spelled natively (no default devices, COM1 on stdio)
                vmm mtree [-f]              print the example machine's memory tree
                vmm bench doorbell|virtio   measure against qemu-system-x86_64 (vmm bench --help)

                """
        }
        if parsed.version { return versionText }
        return parsed.deviceHelp
    }
}

/// Ends the process with a specific status (e.g. the guest's isa-debug-exit status).
struct ExitStatus: Error {
    var code: Int32
}

/// Writes one line to standard error.
func printError(_ line: String) {
    writeFully(2, Array((line + "\n").utf8))
}

/// Writes to standard output unbuffered (the serial console shares it).
func writeOut(_ text: String) {
    writeFully(1, Array(text.utf8))
}
