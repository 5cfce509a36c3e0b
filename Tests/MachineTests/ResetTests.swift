import Testing

/// `Guests/tests/reset.c`: the guest resets the machine through the PIIX reset control register
/// (0xcf9 <- 0x02, 0x06 and 0x0e), the i8042 (0x64 <- 0xfe) and a triple fault, counting boots
/// in CMOS. Each reset restarts the machine — with `-bios`, SeaBIOS from the reset vector, which
/// boots the kernel again through multiboot_dma.bin; without, the direct boot again — keeping
/// RAM and CMOS; with `-no-reboot` the first reset ends the run with status 0. Compared with
/// QEMU, which always runs firmware. QEMU: qemu_system_reset_request() (rcr_write(),
/// kbd_write_command(), KVM_EXIT_SHUTDOWN), pc_machine_reset(), qemu_system_reset().
@Suite(.enabled(if: Harness.kvmAvailable, "requires read/write access to /dev/kvm"),
       .enabled(if: GuestKernels.toolchainAvailable, "needs gcc, as and ld to build the test kernels"))
struct ResetTests {
    enum Path: String, CaseIterable, Sendable { case direct, firmware }

    static func flags(_ method: String, boots: Int, path: Path, noReboot: Bool = false) throws -> [String] {
        (path == .firmware ? ["-bios", "bios-256k.bin"] : [])
            + Harness.qemuFlags(kernel: try GuestKernels.path("reset"), append: "method=\(method) boots=\(boots)")
            + (noReboot ? ["-no-reboot"] : [])
    }

    static func qemuFlags(_ flags: [String]) -> [String] {
        flags.starts(with: ["-bios", "bios-256k.bin"]) ? Array(flags.dropFirst(2)) : flags
    }

    @Test(arguments: ["cf9", "cf9full", "kbd", "triple"], Path.allCases)
    func resetRestartsTheMachine(method: String, path: Path) throws {
        if path == .firmware { try #require(FirmwareGuests.biosInstalled, "\(FirmwareGuests.biosMissing)") }
        let flags = try Self.flags(method, boots: 2, path: path)
        let v = try Harness.vmm(flags, timeoutSeconds: 120)
        let lines = Harness.serialLines(v.output)
        #expect(v.status == 1 && lines.contains("PASS reset"), "\(v.output)")
        #expect(lines.contains("boot 2 of 2, CMOS shutdown status 00") && lines.contains("RAM word at 0x300000 kept"), "\(v.output)")
        guard let q = try Harness.qemuOrKnownIssue(Self.qemuFlags(flags), timeoutSeconds: 120) else { return }
        #expect(q.status == v.status, "vmm \(v.status), qemu \(q.status)")
        try OutputComparison.expectSame(vmm: lines, qemu: Harness.serialLines(q.output))
    }

    /// `-no-reboot`: a guest reset is a shutdown, status 0, after the first boot's output.
    @Test(arguments: ["cf9", "triple"], Path.allCases)
    func noRebootExits(method: String, path: Path) throws {
        if path == .firmware { try #require(FirmwareGuests.biosInstalled, "\(FirmwareGuests.biosMissing)") }
        let flags = try Self.flags(method, boots: 2, path: path, noReboot: true)
        let v = try Harness.vmm(flags, timeoutSeconds: 120)
        let lines = Harness.serialLines(v.output)
        #expect(v.status == 0 && lines.contains("boot 1 of 2, CMOS shutdown status 00") && !lines.contains("boot 2 of 2, CMOS shutdown status 00"),
                "\(v.output)")
        guard let q = try Harness.qemuOrKnownIssue(Self.qemuFlags(flags), timeoutSeconds: 120) else { return }
        #expect(q.status == v.status, "vmm \(v.status), qemu \(q.status)")
        try OutputComparison.expectSame(vmm: lines, qemu: Harness.serialLines(q.output))
    }
}
