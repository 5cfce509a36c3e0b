import ArgumentParser
#if canImport(Glibc)
import Glibc
#endif

extension VMMCommand {
    /// Runs the command; any user error becomes one line on stderr and exit status 1
    /// (QEMU's convention), never a trap or a usage dump.
    static func main() {
        do {
            var command = try parseAsRoot()
            try command.run()
        } catch let error as ExitStatus {
            Glibc.exit(error.code)
        } catch {
            let code = exitCode(for: error)
            if code == .success {
                // --help, --version: ArgumentParser's own clean exits.
                exit(withError: error)
            }
            let message = fullMessage(for: error)
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
    let text = line + "\n"
    _ = text.withCString { write(2, $0, strlen($0)) }
}
