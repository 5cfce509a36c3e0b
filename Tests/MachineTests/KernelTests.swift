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
        /// Text that legitimately varies, rewritten in both outputs before the comparison.
        var masks: [Mask] = []
        /// Lines only one side prints, each explained (see `OutputComparison`).
        var differences: [OutputDifference] = []
        /// Standard input for the run (the serial console's input with -serial stdio).
        var stdin: String = "/dev/null"
        /// The exit status both VMMs give (1: the kernel passed; 0: the guest powered off).
        var status: Int32 = 1
        /// The last serial line under vmm, where the verdict is not a PASS line.
        var lastLine: String?
        var description: String { "\(kernel) \(append) \(extra.joined(separator: " "))" }
    }

    /// What differs between vmm's and QEMU's virtio-pci functions (the pci kernel's listing).
    static let virtioPCIDifferences: [OutputDifference] = [
        .knownIssue(vmm: "    BAR4 io   c100 size 16", qemu: "    (BAR0 io   c1[0-9a-f]0 size (32|128)|BAR4 io   c1c0 size 16)",
                    "transitional virtio-pci devices (1af4:1000-103f) have no legacy I/O BAR0 under vmm; QEMU's have one (32 bytes for rng, 128 for blk), and SeaBIOS places the IDE BAR4 after them"),
    ]

    static let fwcfgMasks = [
        Mask(#"^  [0-9a-f]{4} "#, "  KEY ", "selector keys are numbered in file-name order over the whole file set"),
        Mask(#"^files: \d+$"#, "files: N", "the file count follows the file set (firmware's own files differ)"),
    ]
    static let fwcfgDifferences: [OutputDifference] = [
        .deliberate(qemu: #"  KEY +\d+ (bios-geometry|bootorder|etc/smbios/smbios-anchor|etc/smbios/smbios-tables|etc/system-states|etc/table-loader|etc/tpm/log|genroms/kvmvapic\.bin|genroms/multiboot_dma\.bin)"#,
                    "files only firmware reads (boot order, SMBIOS, ACPI table loader script, option ROMs): vmm runs no firmware"),
        .deliberate(vmm: "  KEY     36 etc/acpi/rsdp", qemu: "  KEY     20 etc/acpi/rsdp",
                    "vmm's RSDP is revision 2 (36 bytes, with an XSDT); QEMU's is revision 0 (20 bytes)"),
        .deliberate(vmm: #"  KEY +\d+ etc/acpi/tables"#, qemu: "  KEY 131072 etc/acpi/tables",
                    "QEMU pads its table blob to 128 KiB (acpi_build's legacy table size); vmm's holds exactly its tables"),
    ]

    static let acpiMasks = [
        Mask(#" at [0-9a-f]{8}"#, " at ADDR", "table addresses are chosen by firmware (SeaBIOS: top of low RAM; vmm: the BIOS area)"),
        Mask(#" rsdt [0-9a-f]{8}"#, " rsdt ADDR", "table addresses are chosen by firmware"),
        Mask(#" oem "[^"]*""#, " oem OEM", "OEM ID: \"SWVMM \" under vmm, \"BOCHS \" under QEMU (deliberate: vmm's own tables)"),
        Mask(#"advanced \d+ ticks, changed on \d+ reads"#, "advanced N ticks, changed on M reads", "PM timer reads race the timer"),
        Mask(#"TSC: \d+ kHz"#, "TSC: N kHz", "measured frequency"),
    ]
    static let acpiDifferences: [OutputDifference] = [
        .deliberate(vmm: #"RSDP at ADDR rev 2 oem OEM rsdt ADDR|XSDT at [0-9a-f]+|XSDT XSDT at ADDR len 52 rev 1 oem OEM"#,
                    qemu: "RSDP at ADDR rev 0 oem OEM rsdt ADDR",
                    "vmm builds ACPI 2.0 tables: RSDP revision 2 with an XSDT; QEMU + SeaBIOS give revision 0, RSDT only"),
        .deliberate(vmm: #"  table FACP at ADDR len 244 rev 3 oem OEM|FADT IAPC_BOOT_ARCH 3|FADT Flags 84a5|FADT RESET_REG space 1 width 8 address cf9 value 6"#,
                    qemu: #"  table FACP at ADDR len 116 rev 1 oem OEM|FADT IAPC_BOOT_ARCH 0|FADT Flags 80a5"#,
                    "FADT revision 3 (244 bytes: RESET_REG = 0xcf9/6 with flag RESET_REG_SUP, IAPC_BOOT_ARCH legacy devices + 8042); QEMU's is revision 1 (116 bytes), where those fields are reserved"),
        .deliberate(vmm: "    DSDT DSDT at ADDR len 60 rev 2 oem OEM", qemu: #"    DSDT DSDT at ADDR len \d+ rev 1 oem OEM"#,
                    "vmm's DSDT (revision 2) holds only \\_S3 and \\_S5; QEMU's describes the devices in AML"),
        .deliberate(vmm: "  table APIC at ADDR len 120 rev 3 oem OEM", qemu: "  table APIC at ADDR len 120 rev 1 oem OEM",
                    "MADT revision 3 (QEMU: 1); the same entries"),
        .deliberate(vmm: #"FADT GPE0_BLK 0|FADT GPE0_BLK_LEN 0"#, qemu: #"FADT GPE0_BLK afe0|FADT GPE0_BLK_LEN 4"#,
                    "no GPE0 block (QEMU's PIIX4 GPE0 at 0xafe0 serves ACPI hotplug, which vmm does not have)"),
        .deliberate(vmm: #"tables: FACP APIC|RSDT RSDT at ADDR len 44 rev 1 oem OEM"#,
                    qemu: #"tables: FACP APIC HPET WAET|RSDT RSDT at ADDR len 52 rev 1 oem OEM|  table (HPET|WAET) at ADDR len \d+ rev 1 oem OEM|HPET .*"#,
                    "no HPET table (vmm has no HPET; -no-hpet is implied) and no WAET (a Windows hint about the RTC and PM timer)"),
    ]

    static let cyclesPerRequest = Mask(#"^cycles_per_request=\d+$"#, "cycles_per_request=N", "timing")

    static let cases: [Case] = [
        Case(kernel: "hello", append: "arg1 arg2=x"),
        Case(kernel: "mbinfo", append: "mem=128"),
        Case(kernel: "mbinfo", append: "mem=256", extra: ["-m", "256"]),
        Case(kernel: "mbinfo", append: "mem=5120", extra: ["-m", "5G"]),      // RAM above 4 GiB too
        Case(kernel: "mbinfo", append: "mem=256 mods=2",
             extra: ["-m", "256", "-initrd", "\(GuestKernels.repositoryRoot.path)/Guests/tests/mods/one.txt arg1 arg2,\(GuestKernels.repositoryRoot.path)/Guests/tests/mods/two.txt"]),
        // Signature, features, RAM and CPUs must equal QEMU's; the file set is firmware's.
        Case(kernel: "fwcfg", append: "mem=128 cpus=1", masks: fwcfgMasks, differences: fwcfgDifferences),
        Case(kernel: "fwcfg", append: "mem=512 cpus=2", extra: ["-m", "512M", "-smp", "2"], masks: fwcfgMasks, differences: fwcfgDifferences),
        Case(kernel: "pci"),
        // The virtio functions as SeaBIOS leaves them: BARs (64-bit BAR4), sizes, INTx routing
        // (PIRQ (slot-1)&3 -> IRQs 10,10,11,11), capability lists; vectors=0 has no MSI-X.
        Case(kernel: "pci", extra: ["-device", "virtio-rng-pci", "-drive", "file=\(GuestKernels.scratchImage),if=none,id=d0,format=raw,readonly=on",
                                    "-device", "virtio-blk-pci,drive=d0", "-device", "virtio-rng-pci,vectors=0"],
             differences: virtioPCIDifferences),
        Case(kernel: "pcitestdev"),
        Case(kernel: "pctestdev"),
        Case(kernel: "irq"),
        // Through the IOAPIC on an edge-triggered line.
        Case(kernel: "irq", append: "irq=3 mode=ioapic"),
        Case(kernel: "acpi", masks: acpiMasks, differences: acpiDifferences),
        // ACPI S5 soft-off from the FADT and the DSDT's \_S5: the machine stops (status 0);
        // first a sleep type nothing names, which must not.
        Case(kernel: "poweroff", masks: [Mask(#"status [0-9a-f]{4} enable"#, "status S enable",
                                             "TMR_STS depends on how long firmware ran before the kernel (QEMU + SeaBIOS: > 2.3 s)")],
             status: 0, lastLine: "powering off"),
        // The ELCR as SeaBIOS's piix_isa_bridge_setup leaves it (PCI IRQs 10 and 11 level).
        Case(kernel: "elcr"),
        Case(kernel: "smp", append: "cpus=4", extra: ["-smp", "4"]),
        // virtio-rng-pci: modern interface, MSI-X; per-request cycles differ run to run.
        Case(kernel: "virtiorng", append: "requests=50", extra: ["-device", "virtio-rng-pci"],
             masks: [cyclesPerRequest]),
        // INTx and the ISR: no MSI-X capability (vectors=0), then MSI-X present but left
        // disabled; the line as SeaBIOS routes it (slot 3: PIRQC -> IRQ 11), level, IOAPIC.
        Case(kernel: "virtiorng", append: "requests=50", extra: ["-device", "virtio-rng-pci,vectors=0"], masks: [cyclesPerRequest]),
        Case(kernel: "virtiorng", append: "requests=50 intx", extra: ["-device", "virtio-rng-pci"], masks: [cyclesPerRequest]),
        // MSI-X function mask; reset and a full re-initialization (MSI-X and INTx).
        Case(kernel: "virtiorng", append: "requests=20 fmask reinit", extra: ["-device", "virtio-rng-pci"], masks: [cyclesPerRequest]),
        Case(kernel: "virtiorng", append: "requests=20 reinit", extra: ["-device", "virtio-rng-pci,vectors=0"], masks: [cyclesPerRequest]),
        // virtio-pci's VIRTIO_PCI_CAP_PCI_CFG window: the capability list and write mask, the
        // window against BAR 4, hostile offsets, lengths and BAR numbers, a notify through it.
        Case(kernel: "pcicfg", extra: ["-device", "virtio-rng-pci"],
             differences: [.knownIssue(vmm: #"device_feature\[63:32\]: window 1, BAR 1"#, qemu: #"device_feature\[63:32\]: window 101, BAR 101"#,
                                       "QEMU 7.2 also offers VIRTIO_F_RING_RESET (bit 40, per-queue reset); vmm does not implement it")]),
        // The 16550A's reset state and FIFO: overrun, trigger levels, character timeout.
        Case(kernel: "uart"),
        // -serial stdio is two-way: the kernel echoes a line typed on standard input.
        Case(kernel: "echo", stdin: GuestKernels.repositoryRoot.appendingPathComponent("Guests/tests/echo-input.txt").path),
        // 64-bit long mode (entered by the kernel itself); cycle counts differ run to run.
        Case(kernel: "bench", append: "writes=2000",
             masks: [Mask(#" cycles=\d+$"#, " cycles=N", "timing"), Mask(#"^tsc_khz=\d+ "#, "tsc_khz=N ", "measured against the PM timer")]),
    ]

    @Test(arguments: cases)
    func passesUnderVMM(_ c: Case) throws {
        let kernel = try GuestKernels.path(c.kernel)
        let run = try Harness.vmm(Harness.qemuFlags(kernel: kernel, append: c.append, extra: c.extra), stdinPath: c.stdin)
        let lines = Harness.serialLines(run.output)
        if let last = c.lastLine {
            #expect(lines.last(where: { !$0.isEmpty }) == last, "\(run.output)")
        } else {
            #expect(lines.contains("PASS \(c.kernel)"), "\(run.output)")
        }
        #expect(run.status == c.status, "exit status \(run.status)\n\(run.output)")
    }

    /// The same kernel and command line under qemu-system-x86_64: the same exit status and the
    /// same serial output line for line, except what the case masks or lists as a difference.
    @Test(.enabled(if: Harness.qemuPath != nil, "qemu-system-x86_64 not installed (apt-get install qemu-system-x86)"),
          arguments: cases)
    func matchesQEMU(_ c: Case) throws {
        let kernel = try GuestKernels.path(c.kernel)
        let flags = Harness.qemuFlags(kernel: kernel, append: c.append, extra: c.extra)
        let v = try Harness.vmm(flags, stdinPath: c.stdin)
        let q = try Harness.requireQEMU(flags, stdinPath: c.stdin)
        #expect(v.status == q.status, "vmm \(v.status), qemu \(q.status)")
        try OutputComparison.expectSame(vmm: Harness.serialLines(v.output), qemu: Harness.serialLines(q.output),
                                        masks: c.masks, differences: c.differences)
    }
}
