import Testing

/// `Guests/tests/cf8low.c` under vmm and QEMU: configuration mechanism #1 with the low two bits
/// of CONFIG_ADDRESS set, the end of configuration space, writes through the same decode, and
/// byte reads of 0xcf8-0xcfb — 0xcf9 is the PIIX3 reset control register mapped over
/// CONFIG_ADDRESS at priority 1 (it reads 0), while a dword at 0xcf8 still reaches
/// CONFIG_ADDRESS whole (QEMU: piix3_realize(), address_space_translate_internal()). The same
/// serial output and status under both.
@Suite(.enabled(if: Harness.kvmAvailable, "requires read/write access to /dev/kvm"),
       .enabled(if: GuestKernels.toolchainAvailable, "needs gcc, as and ld to build the test kernels"))
struct CF8DecodeTests {
    @Test func thirdPartyLowBitsFindTheDeviceID() throws {
        let flags = Harness.qemuFlags(kernel: try GuestKernels.path("cf8low"))
        let v = try Harness.vmm(flags)
        let lines = Harness.serialLines(v.output)
        #expect(lines.contains("0x80001002, word at 0xcfc: 5"), "\(v.output)")
        #expect(lines.contains("0xcf8 bytes: 2 0 2 2, word at 0xcfa: 4302"), "\(v.output)")
        #expect(lines.contains("PASS cf8low") && v.status == 1, "\(v.output)")
        guard let q = try Harness.qemuOrKnownIssue(flags) else { return }
        #expect(v.status == q.status, "vmm \(v.status), qemu \(q.status)")
        try OutputComparison.expectSame(vmm: lines, qemu: Harness.serialLines(q.output))
    }
}
