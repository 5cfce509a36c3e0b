// ChildProcess and ChildRun, for every file of this target (they used to come with VMMSys).
@_exported import ProcessSupport
import Testing
import TestSupport
import VMMSys

/// Runs guest kernels under the built `vmm` executable and, where installed, under
/// qemu-system-x86_64 with the very same command line.
enum Harness {
    /// True when /dev/kvm can be opened read-write (`TestHost.kvmAvailable`).
    static var kvmAvailable: Bool { TestHost.kvmAvailable }

    static let kvmSkipReason = "requires read/write access to /dev/kvm"

    /// The `vmm` executable built next to this test binary (`TestHost.vmmPath`).
    static var vmmPath: String? { TestHost.vmmPath }

    /// `TestHost.qemuPath`.
    static var qemuPath: String? { TestHost.qemuPath }

    /// QEMU's flags for the small test kernels (PC-DEVICES.md).
    static func qemuFlags(kernel: String, append: String = "", extra: [String] = []) -> [String] {
        ["-machine", "accel=kvm", "-nodefaults", "-display", "none", "-serial", "stdio",
         "-device", "isa-debug-exit,iobase=0xf4,iosize=0x4", "-device", "pc-testdev", "-device", "pci-testdev",
         "-kernel", kernel, "-append", append] + extra
    }

    /// Runs `vmm` with `arguments`.
    static func vmm(_ arguments: [String], timeoutSeconds: Int = 60, stdinPath: String = "/dev/null") throws -> ChildRun {
        guard let vmmPath else { throw HarnessError("vmm executable not found next to the test binary") }
        return try ChildProcess.run([vmmPath] + arguments, timeoutSeconds: timeoutSeconds, stdinPath: stdinPath)
    }

    /// Runs QEMU with `arguments`, or nil where it is not installed.
    static func qemu(_ arguments: [String], timeoutSeconds: Int = 120, stdinPath: String = "/dev/null") throws -> ChildRun? {
        guard let qemuPath else { return nil }
        return try ChildProcess.run([qemuPath] + arguments, timeoutSeconds: timeoutSeconds, stdinPath: stdinPath)
    }

    static let qemuMissing = "qemu-system-x86_64 is not installed (apt-get install qemu-system-x86): the QEMU half of this comparison did not run"

    /// Runs QEMU with `arguments` for the QEMU half of a differential test. Where QEMU is not
    /// installed it records a known issue saying the comparison did not run (so the test cannot
    /// pass silently) and returns nil.
    static func qemuOrKnownIssue(_ arguments: [String], timeoutSeconds: Int = 120, stdinPath: String = "/dev/null",
                                 sourceLocation: SourceLocation = #_sourceLocation) throws -> ChildRun? {
        guard let run = try qemu(arguments, timeoutSeconds: timeoutSeconds, stdinPath: stdinPath) else {
            withKnownIssue(Comment(rawValue: qemuMissing)) { Issue.record(Comment(rawValue: qemuMissing), sourceLocation: sourceLocation) }
            return nil
        }
        return run
    }

    /// Runs QEMU with `arguments`; throws where it is not installed (for tests already gated on
    /// `qemuPath`).
    static func requireQEMU(_ arguments: [String], timeoutSeconds: Int = 120, stdinPath: String = "/dev/null") throws -> ChildRun {
        guard let run = try qemu(arguments, timeoutSeconds: timeoutSeconds, stdinPath: stdinPath) else { throw HarnessError(qemuMissing) }
        return run
    }

    /// The serial text of a run: QEMU's own warnings on stderr are dropped (they go to the
    /// same capture), as are carriage returns.
    static func serialLines(_ output: String) -> [String] {
        output.split(separator: "\n", omittingEmptySubsequences: false)
            .map { String($0.filter { $0 != "\r" }) }
            .filter { !$0.hasPrefix("qemu-system-x86_64:") && !$0.hasPrefix("vmm: warning:") }
    }
}

struct HarnessError: Error, CustomStringConvertible {
    var description: String
    init(_ d: String) { description = d }
}

