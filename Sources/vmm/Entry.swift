import ArgumentParser
import Foundation
import Logging
import VMMSys
#if canImport(Glibc)
import Glibc
#endif

@main
enum Entry {
    /// Runs the command; any user error becomes one line on stderr and exit status 1
    /// (QEMU's convention), never a trap or a usage dump.
    static func main() {
        // A closed output pipe must not kill the VMM (QEMU ignores SIGPIPE too); writes then
        // just fail.
        signal(SIGPIPE, SIG_IGN)
        // Logs go to stderr; VMM_LOG=debug|info|warning|error sets the level (default warning,
        // so a normal run prints only the guest's serial output, as QEMU does).
        let level = ProcessInfo.processInfo.environment["VMM_LOG"].flatMap(Logger.Level.init(rawValue:)) ?? .warning
        LoggingSystem.bootstrap { label in
            var h = StreamLogHandler.standardError(label: label)
            h.logLevel = level
            return h
        }
        let arguments = Array(CommandLine.arguments.dropFirst())
        let native = arguments.first.map { VMMCommand.subcommandNames.contains($0) } ?? false
        let root: any ParsableCommand.Type = native ? VMMCommand.self : QEMUCommand.self
        do {
            var command = try root.parseAsRoot(arguments)
            try command.run()
        } catch let error as ExitStatus {
            Glibc.exit(error.code)
        } catch {
            let code = root.exitCode(for: error)
            if code == .success {
                // --help, --version: ArgumentParser's own clean exits.
                root.exit(withError: error)
            }
            let message = root.fullMessage(for: error)
                .split(separator: "\n").first.map(String.init) ?? "\(error)"
            let line = message.hasPrefix("Error: ") ? String(message.dropFirst(7)) : message
            printError("vmm: \(line)")
            Glibc.exit(1)
        }
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
