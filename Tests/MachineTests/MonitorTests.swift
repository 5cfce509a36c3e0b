import Foundation
import Testing
import VMMSys

/// `-monitor stdio` on a running guest: QEMU's human monitor commands answer, and `quit` ends
/// the run with status 0.
@Suite(.enabled(if: Harness.kvmAvailable, "requires read/write access to /dev/kvm"),
       .enabled(if: GuestKernels.toolchainAvailable, "needs gcc, as and ld to build the test kernels"))
struct MonitorTests {
    @Test func infoMtreeIoeventfdsAndQuit() throws {
        let kernel = try HostileGuestTests.kernel.get()   // runs for as long as we let it
        let input = FileManager.default.temporaryDirectory.appendingPathComponent("monitor-\(getpid()).txt")
        try "info mtree\ninfo mtree -f\ninfo ioeventfds\ninfo pci\ninfo status\nquit\n".write(to: input, atomically: true, encoding: .utf8)
        defer { try? FileManager.default.removeItem(at: input) }
        guard let vmm = Harness.vmmPath else { throw HarnessError("vmm not built") }
        let run = try ChildProcess.run(
            [vmm, "-machine", "accel=kvm", "-nodefaults", "-display", "none", "-serial", "none", "-monitor", "stdio",
             "-device", "pci-testdev", "-device", "isa-debug-exit,iobase=0xf4,iosize=0x4",
             "-kernel", kernel, "-append", "seed=3 rounds=4000000000"],
            timeoutSeconds: 60, stdinPath: input.path)
        #expect(run.status == 0, "\(run.output.suffix(500))")
        #expect(run.output.contains("QEMU 7.2.0 monitor"))
        #expect(run.output.contains("address-space: memory\n  0000000000000000-ffffffffffffffff (prio 0, i/o): system\n"))
        #expect(run.output.contains("alias ram-below-4g @pc.ram 0000000000000000-0000000007ffffff"))
        #expect(run.output.contains("(prio 1, i/o): pci-testdev-mmio"))
        #expect(run.output.contains("FlatView #0\n AS \"memory\", root: system"))
        #expect(run.output.contains("address-space: I/O ("))
        #expect(run.output.contains("VM status: running"))
        #expect(run.output.contains("  Bus  0, device   2, function 0:\n    Class 0255: PCI device 1b36:0005\n"))
        #expect(run.output.contains("      BAR1: I/O at 0xc000 [0xc0ff].\n"))
    }
}
