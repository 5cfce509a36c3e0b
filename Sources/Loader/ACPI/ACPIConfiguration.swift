/// What the ACPI tables describe and where they go. Defaults match QEMU's `pc` machine: a
/// PIIX4-style PM block at 0x600, SCI on IRQ 9, IOAPIC id 0 at 0xfec00000.
/// QEMU: what `acpi_build()` reads from the machine (`X86MachineState`, `AcpiPmInfo`).
public struct ACPIConfiguration: Sendable {
    /// Number of CPUs; CPU `i` gets APIC ID and ACPI processor UID `i`. 1...255 (xAPIC IDs
    /// stop at 254; 255 is the broadcast ID).
    public var cpuCount: Int
    /// Where the tables (FACS, DSDT, FADT, MADT, RSDT, XSDT) start; must be below 4 GiB
    /// because the RSDT and FADT hold 32-bit pointers.
    public var tablesAddress: UInt64
    /// The first byte past the area the tables may fill.
    public var tablesLimit: UInt64
    /// Where the RSDP goes: 16-byte aligned in the BIOS area 0xE0000–0xFFFFF, where the OS
    /// searches for it.
    public var rsdpAddress: UInt64

    /// Local APIC base every CPU sees.
    public var localAPICAddress: UInt32 = 0xFEE0_0000
    /// The IOAPIC's ID in the MADT. QEMU: `ACPI_BUILD_IOAPIC_ID` (0).
    public var ioapicID: UInt8 = 0
    /// The IOAPIC's MMIO base in the MADT. QEMU: `IO_APIC_DEFAULT_ADDRESS`.
    public var ioapicAddress: UInt32 = 0xFEC0_0000
    /// I/O base of the PM register block: PM1a event at +0, PM1a control at +4, timer at +8.
    public var pmBase: UInt16 = 0x600
    /// The ACPI SCI's ISA IRQ (and GSI).
    public var sciInterrupt: UInt16 = 9
    /// SMI command port; 0 (the default) tells the OS the machine is always in ACPI mode, so
    /// the PM device must report PM1a_CNT.SCI_EN set. QEMU `pc` uses 0xB2 with SMM.
    public var smiCommandPort: UInt32 = 0
    /// IAPC_BOOT_ARCH: bit 0 legacy devices (LPC/ISA), bit 1 8042 keyboard controller.
    public var bootArchitectureFlags: UInt16 = 0x0003
    /// Whether the DSDT offers S3 (suspend to RAM, SLP_TYP 1 as QEMU's PIIX4): the pc machine
    /// offers it with and without firmware, resuming through SeaBIOS's reset-vector path or, in
    /// the direct boot, by entering the FACS waking vector itself.
    public var s3 = false
    /// OEM identification written into every table.
    public var oemID: String = "SWVMM"
    /// OEM table ID in every table header (cut or space-padded to 8 characters).
    /// QEMU: the machine's `oem-table-id` (default "BXPC").
    public var oemTableID: String = "SWVMMPC"

    /// Tables for `cpuCount` CPUs in `[tablesAddress, tablesLimit)` (by default the 64 KiB
    /// at 0xE0000) with the RSDP at `rsdpAddress` (0xF0000); the rest takes the defaults above.
    public init(cpuCount: Int, tablesAddress: UInt64 = 0xE0000, tablesLimit: UInt64 = 0xF0000,
                rsdpAddress: UInt64 = 0xF0000) {
        self.cpuCount = cpuCount
        self.tablesAddress = tablesAddress
        self.tablesLimit = tablesLimit
        self.rsdpAddress = rsdpAddress
    }
}
