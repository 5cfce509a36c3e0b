import Foundation
import Testing
import VMMSys

/// Small test kernels run unchanged under `vmm` with QEMU's command line: each prints its
/// checks and a verdict on serial and exits through isa-debug-exit (status 1 = pass).
@Suite(.enabled(if: Harness.kvmAvailable, "requires read/write access to /dev/kvm"),
       .enabled(if: GuestKernels.toolchainAvailable, "needs gcc, as and ld to build the test kernels"))
struct KernelTests {
    struct Case: Sendable, CustomStringConvertible {
        var kernel: String
        var append: String = ""
        var extra: [String] = []
        var description: String { "\(kernel) \(append) \(extra.joined(separator: " "))" }
    }

    static let cases: [Case] = [
        Case(kernel: "hello", append: "arg1 arg2=x"),
        Case(kernel: "mbinfo", append: "mem=128"),
        Case(kernel: "mbinfo", append: "mem=256", extra: ["-m", "256"]),
        Case(kernel: "fwcfg", append: "mem=128 cpus=1"),
        Case(kernel: "fwcfg", append: "mem=512 cpus=2", extra: ["-m", "512M", "-smp", "2"]),
        Case(kernel: "pci"),
        Case(kernel: "pcitestdev"),
        Case(kernel: "pctestdev"),
        Case(kernel: "irq"),
        Case(kernel: "acpi"),
        Case(kernel: "smp", append: "cpus=4", extra: ["-smp", "4"]),
    ]

    @Test(arguments: cases)
    func passesUnderVMM(_ c: Case) throws {
        let kernel = try GuestKernels.path(c.kernel)
        let run = try Harness.vmm(Harness.qemuFlags(kernel: kernel, append: c.append, extra: c.extra))
        let lines = Harness.serialLines(run.output)
        #expect(lines.contains("PASS \(c.kernel)"), "\(run.output)")
        #expect(run.status == 1, "exit status \(run.status)")
    }
}
