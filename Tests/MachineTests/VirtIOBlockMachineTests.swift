import Foundation
import Testing
import VMMSys

/// virtio-blk-pci over a raw image, the same kernel and command line under vmm and QEMU: both
/// print the same lines (QEMU's feature set included), and leave the image byte for byte the same.
@Suite(.enabled(if: Harness.kvmAvailable, "requires read/write access to /dev/kvm"),
       .enabled(if: GuestKernels.toolchainAvailable, "needs gcc, as and ld to build the test kernels"))
struct VirtIOBlockMachineTests {
    static func makeImage(_ name: String) throws -> String {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("\(name)-\(getpid())-\(UInt32.random(in: 0...UInt32.max)).img").path
        var bytes = [UInt8](repeating: 0, count: 2048 * 512)
        bytes.replaceSubrange(0..<21, with: Array("SWIFTVMM-DISK-SECTOR0".utf8))
        try Data(bytes).write(to: URL(fileURLWithPath: path))
        return path
    }

    static func flags(_ kernel: String, _ image: String, append: String = "sectors=2048") -> [String] {
        ["-machine", "accel=kvm", "-nodefaults", "-display", "none", "-serial", "stdio",
         "-device", "isa-debug-exit,iobase=0xf4,iosize=0x4",
         "-drive", "file=\(image),if=none,id=d0,format=raw", "-device", "virtio-blk-pci,drive=d0",
         "-kernel", kernel, "-append", append]
    }

    /// The block configuration vmm and QEMU report differently.
    /// Default: every feature the kernel knows (FLUSH, DISCARD, WRITE_ZEROES, INDIRECT_DESC,
    /// EVENT_IDX); "basic": VERSION_1 and FLUSH only (no event index, direct chains).
    @Test(arguments: ["sectors=2048", "sectors=2048 basic"])
    func readsWritesFlushAndMatchesQEMU(_ append: String) throws {
        let kernel = try GuestKernels.path("virtioblk")
        let mine = try Self.makeImage("vmm-disk")
        defer { try? FileManager.default.removeItem(atPath: mine) }
        let v = try Harness.vmm(Self.flags(kernel, mine, append: append))
        #expect(v.status == 1, "\(v.output)")
        #expect(v.output.contains("readback 100+2 ok") && v.output.contains("read past end status 1"))
        let full = !append.contains("basic")
        #expect(v.output.contains("readback 200+4 ok: 201-202 zero, 200 and 203 kept") == full, "\(v.output)")
        #expect(v.output.contains("discard with the unmap flag status 2") == full)
        #expect(v.output.contains("(indirect)") == full)
        let disk = try Data(contentsOf: URL(fileURLWithPath: mine))
        #expect(disk[5 * 512 + 1] == 10, "sector 5 holds the guest's pattern (i*7+3)")
        let theirs = try Self.makeImage("qemu-disk")
        defer { try? FileManager.default.removeItem(atPath: theirs) }
        guard let q = try Harness.qemuOrKnownIssue(Self.flags(kernel, theirs, append: append)) else { return }
        #expect(q.status == v.status)
        // Same features offered, same configuration, same requests, same used lengths, same results.
        try OutputComparison.expectSame(vmm: Harness.serialLines(v.output), qemu: Harness.serialLines(q.output))
        #expect(disk == (try Data(contentsOf: URL(fileURLWithPath: theirs))), "the two images differ")
    }

    @Test func hostileCommandLinesAndImages() throws {
        let missing = try Harness.vmm(Self.flags("/bin/true", "/nonexistent/disk.img"))
        #expect(missing.status == 1 && missing.output.hasPrefix("vmm: ") && missing.output.contains("/nonexistent/disk.img"))
        let noDrive = try Harness.vmm(["-device", "virtio-blk-pci,drive=nope", "-kernel", "/bin/true"])
        #expect(noDrive.status == 1 && noDrive.output.contains("Property 'virtio-blk-pci.drive' can't find value 'nope'"))
        let ide = try Harness.vmm(["-drive", "file=/tmp/x.img", "-kernel", "/bin/true"])
        #expect(ide.status == 1 && ide.output.contains("if=ide"))
    }
}
