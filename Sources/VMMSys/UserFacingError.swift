/// A failure told to the user in one line: a command line the machine cannot run, a machine
/// that could not be built, a device that could not be set up, a benchmark that could not run.
/// `vmm` prints `description` and exits non-zero. The modules name it for their domain
/// (`ConfigurationError`, `MachineError`, `VirtIOError`, `BenchError`); it is one type.
///
/// Messages echo what the user typed. A value may itself hold a newline or another control
/// character (an argument vector can carry anything); those are written as Swift escapes
/// (`\n`, `\u{1B}`) so the message stays one line that says what was wrong.
/// QEMU: error_report() followed by exit(1).
public struct UserFacingError: Error, CustomStringConvertible, Sendable, Equatable {
    /// The one-line message.
    public let message: String

    /// The error saying `message`, its control characters escaped so it stays one line.
    public init(_ message: String) { self.message = Self.oneLine(message) }

    /// The one-line message (what `vmm` prints before exiting).
    public var description: String { message }

    /// `text` with every control character escaped.
    static func oneLine(_ text: String) -> String {
        guard text.unicodeScalars.contains(where: { $0.properties.generalCategory == .control }) else { return text }
        var out = ""
        for scalar in text.unicodeScalars {
            if scalar.properties.generalCategory == .control {
                out += scalar.escaped(asASCII: true)
            } else {
                out.unicodeScalars.append(scalar)
            }
        }
        return out
    }
}
