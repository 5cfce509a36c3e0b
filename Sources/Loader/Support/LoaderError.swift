import VMMSys
/// A boot loader or firmware-table builder refused its input.
///
/// `subject` names what was wrong — the kernel or module path, or "ACPI" for the tables — so
/// the message tells the user which command-line argument to fix, e.g.
/// `kernel.elf: segment 1 [0x100000, 0x180000) lies outside guest RAM`.
public struct LoaderError: Error, Equatable, Sendable, CustomStringConvertible {
    /// The file path (or "ACPI") the problem belongs to.
    public let subject: String
    /// What is wrong, without the subject.
    public let problem: String

    /// An error about `subject` saying `problem`.
    public init(_ subject: String, _ problem: String) {
        self.subject = subject
        self.problem = problem
    }

    /// `subject: problem`, the line the user sees (QEMU's messages name the file the same
    /// way: "qemu: could not load kernel 'k': …").
    public var description: String { "\(subject): \(problem)" }
}

/// `[0x…, 0x…)` rendering of a half-open range.
func hexRange(_ start: UInt64, _ end: UInt64) -> String { "[\(hex(start)), \(hex(end)))" }
