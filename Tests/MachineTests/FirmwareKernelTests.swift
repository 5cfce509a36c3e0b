import Foundation
import Loader
import Testing

/// `-bios bios-256k.bin -kernel K`: SeaBIOS boots the kernel through QEMU's own option ROM
/// (multiboot_dma.bin, fed by fw_cfg's kernel and initrd items over the DMA interface), as QEMU
/// does. Every kernel the direct path runs (`KernelTests.cases`) runs this way with the same
/// serial output and status as the direct path, except what each case lists below.
///
/// Kernels that differ, and why:
/// - fwcfg lists the fw_cfg files, and with firmware the machine offers SeaBIOS its own
///   (bootorder, bios-geometry, etc/system-states, etc/table-loader, the option ROM) and the
///   ACPI blob padded to 128 KiB as QEMU's, where the direct path has only what kernels read.
/// - acpi: SeaBIOS places the tables itself (in the same reserved top of low RAM as the direct
///   path, the RSDP in the F segment), so their addresses differ; they are masked for both.
/// - poweroff: the PM timer's status bit depends on how long firmware ran (masked).
/// - The Linux image of `LinuxBootMachineTests` (its 64-bit entry only; no setup code) runs
///   only directly; with firmware, linuxboot_dma.bin runs a kernel's real-mode setup, which
///   `Guests/firmware/linuxboot.S` has and reports (`linuxSetupRunsAsUnderQEMU`).
@Suite(.enabled(if: Harness.kvmAvailable, "requires read/write access to /dev/kvm"),
       .enabled(if: GuestKernels.toolchainAvailable, "needs gcc, as and ld to build the test kernels"),
       .enabled(if: FirmwareGuests.biosInstalled, "needs SeaBIOS (apt-get install seabios qemu-system-data)"),
       .enabled(if: FirmwareLocator.find(MultibootFirmwareImage.romName, dataDirectories: []) != nil,
                "needs QEMU's option ROMs (apt-get install qemu-system-data)"))
struct FirmwareKernelTests {
    static let firmwareFiles: [OutputDifference] = [
        .deliberate(qemu: #"  KEY +\d+ (bios-geometry|bootorder|etc/system-states|etc/table-loader|genroms/multiboot_dma\.bin)"#,
                    "with firmware the machine offers SeaBIOS its files (boot order, sleep states, the ACPI table loader, the option ROM)"),
        .deliberate(vmm: #"  KEY +\d+ etc/acpi/tables"#, qemu: "  KEY 131072 etc/acpi/tables",
                    "with firmware the ACPI blob is padded to 128 KiB as QEMU's (the direct path holds exactly its tables)"),
    ]

    /// What may differ between the direct run and the firmware run of `c`.
    static func exceptions(_ c: KernelTests.Case) -> (masks: [Mask], differences: [OutputDifference]) {
        switch c.kernel {
        case "fwcfg": return (KernelTests.fwcfgMasks, firmwareFiles)
        case "acpi":
            return (KernelTests.acpiMasks + [Mask(#"^XSDT at [0-9a-f]+$"#, "XSDT at ADDR", "table addresses are chosen by firmware")],
                    [])
        default: return (c.masks, [])
        }
    }

    @Test(arguments: KernelTests.cases)
    func sameOutputAsTheDirectPath(_ c: KernelTests.Case) throws {
        let kernel = try GuestKernels.path(c.kernel)
        let flags = Harness.qemuFlags(kernel: kernel, append: c.append, extra: c.extra)
        let direct = try Harness.vmm(flags, stdinPath: c.stdin)
        let firmware = try Harness.vmm(["-bios", "bios-256k.bin"] + flags, timeoutSeconds: 120, stdinPath: c.stdin)
        #expect(firmware.status == c.status && direct.status == c.status,
                "status direct \(direct.status), firmware \(firmware.status)\n\(firmware.output)")
        let (masks, differences) = Self.exceptions(c)
        try OutputComparison.expectSame(vmm: Harness.serialLines(direct.output), qemu: Harness.serialLines(firmware.output),
                                        masks: masks, differences: differences, names: ("direct", "firmware"))
    }

    /// A synthesized bzImage whose real-mode setup code reports how linuxboot_dma.bin entered
    /// it (segments, stack, the header fields a loader patches, command line, the first bytes of
    /// the kernel and initrd), under vmm and QEMU with the same command line.
    @Test(arguments: [
        ["-append", "console=ttyS0"],
        ["-append", "console=ttyS0 vga=ext", "-initrd", "INITRD"],
        ["-append", "vga=0x317 quiet", "-m", "256", "-initrd", "INITRD"],
    ])
    func linuxSetupRunsAsUnderQEMU(_ extra: [String]) throws {
        let initrd = try GuestKernels.built.get() + "/linuxboot-initrd-\(getpid()).txt"
        try Data("INITRD-CONTENTS-0123456789".utf8).write(to: URL(fileURLWithPath: initrd))
        let kernel = try GuestKernels.built.get() + "/linuxboot.bzImage"
        let flags = FirmwareGuests.baseFlags + ["-kernel", kernel] + extra.map { $0 == "INITRD" ? initrd : $0 }
        let v = try Harness.vmm(["-bios", "bios-256k.bin"] + flags, timeoutSeconds: 120)
        let lines = Harness.serialLines(v.output)
        #expect(v.status == 1 && lines.contains("PASS linuxboot") && lines.contains("kernel: KERNEL-PAYLOAD-0"), "\(v.output)")
        #expect(lines.contains("linuxboot: cs=1020 ds=1000 es=1000 ss=1000 sp=fff0"), "\(v.output)")
        if extra.contains("INITRD") { #expect(lines.contains("initrd: INITRD-CONTENTS-"), "\(v.output)") }
        guard let q = try Harness.qemuOrKnownIssue(flags, timeoutSeconds: 120) else { return }
        #expect(q.status == v.status)
        try OutputComparison.expectSame(vmm: lines, qemu: Harness.serialLines(q.output))
    }

    /// An invalid `vga=` is refused before anything runs, as QEMU refuses it.
    @Test func invalidVideoModeIsOneLine() throws {
        let kernel = try GuestKernels.built.get() + "/linuxboot.bzImage"
        let flags = FirmwareGuests.baseFlags + ["-kernel", kernel, "-append", "vga=12x"]
        let v = try Harness.vmm(["-bios", "bios-256k.bin"] + flags)
        #expect(v.status == 1 && v.output.contains("invalid 'vga=' kernel parameter.")
                && v.output.split(separator: "\n").count == 1, "\(v.output)")
        guard let q = try Harness.qemuOrKnownIssue(flags) else { return }
        #expect(q.status == 1 && q.output.contains("invalid 'vga=' kernel parameter."), "\(q.output)")
    }
}
