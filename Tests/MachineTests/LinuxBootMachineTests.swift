import Foundation
import Testing
import VMMSys

/// `-kernel bzImage`: the Linux boot protocol's 64-bit entry, end to end under vmm, with a
/// synthesized image whose "kernel" checks what the protocol promises (RSI → boot_params with
/// the setup header copied in, the command line at cmd_line_ptr) and reports through
/// isa-debug-exit. (Stock Linux cannot run on this host's KVM; this proves the entry state.)
@Suite(.enabled(if: Harness.kvmAvailable, "requires read/write access to /dev/kvm"))
struct LinuxBootMachineTests {
    static func image() -> [UInt8] {
        var f = [UInt8](repeating: 0, count: 1024)            // boot sector + 1 setup sector
        func put(_ v: UInt64, _ at: Int, _ n: Int) { for i in 0..<n { f[at + i] = UInt8(truncatingIfNeeded: v >> (8 * UInt64(i))) } }
        put(1, 0x1f1, 1)                                       // setup_sects
        put(0xaa55, 0x1fe, 2)
        put(0x6aeb, 0x200, 2)                                  // jmp; header ends at 0x26c
        put(0x5372_6448, 0x202, 4)                             // "HdrS"
        put(0x020f, 0x206, 2)
        put(0x01, 0x211, 1)                                    // LOADED_HIGH
        put(0x10_0000, 0x214, 4)
        put(0x7fff_ffff, 0x22c, 4)
        put(0x20_0000, 0x230, 4)
        put(0x01, 0x236, 2)                                    // XLF_KERNEL_64
        put(2048, 0x238, 4)
        put(0x100_0000, 0x258, 8)
        put(0x10_0000, 0x260, 4)
        var kernel = [UInt8](repeating: 0x90, count: 0x200)    // the 32-bit entry area
        kernel += [
            0x8b, 0x86, 0x02, 0x02, 0x00, 0x00,                // mov eax, [rsi+0x202]
            0x3d, 0x48, 0x64, 0x72, 0x53,                      // cmp eax, "HdrS"
            0x75, 0x0f,                                        // jne fail
            0x8b, 0x86, 0x28, 0x02, 0x00, 0x00,                // mov eax, [rsi+0x228]  cmd_line_ptr
            0x8a, 0x00,                                        // mov al, [rax]         first byte
            0x3c, 0x7a,                                        // cmp al, 'z'
            0x75, 0x06,                                        // jne fail
            0xb0, 0x10, 0xe6, 0xf4, 0xeb, 0xfe,                // out 0xf4, 0x10 → status 33
            0xb0, 0x11, 0xe6, 0xf4, 0xeb, 0xfe,                // fail: out 0xf4, 0x11 → status 35
        ]
        return f + kernel
    }

    @Test func sixtyFourBitEntryStateIsTheProtocols() throws {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("bzImage-\(getpid())").path
        try Data(Self.image()).write(to: URL(fileURLWithPath: path))
        defer { try? FileManager.default.removeItem(atPath: path) }
        let run = try Harness.vmm(Harness.qemuFlags(kernel: path, append: "zero-page-check console=ttyS0"))
        #expect(run.status == 33, "\(run.output)")
        let wrongCmdline = try Harness.vmm(Harness.qemuFlags(kernel: path, append: "console=ttyS0"))
        #expect(wrongCmdline.status == 35, "the check can fail: \(wrongCmdline.output)")
    }
}
