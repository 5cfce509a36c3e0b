/// Where guest RAM goes on the pc machine, computed as QEMU's i440FX pc does.
///
/// RAM fills guest-physical memory from 0 up to the start of the PCI hole; whatever does not fit
/// below 4 GiB is mapped from 4 GiB up. With 3.5 GiB of RAM or more, the low part is cut at 3 GiB
/// (QEMU's gigabyte alignment for pc machines). QEMU: pc_init1() lowmem / below_4g_mem_size.
public struct PCMemoryLayout: Sendable, Equatable {
    /// Bytes of RAM mapped at guest-physical 0.
    public let below4G: UInt64
    /// Bytes of RAM mapped at 4 GiB.
    public let above4G: UInt64

    /// Start of the IOAPIC page; the PCI MMIO hole ends just below it.
    public static let ioapicBase: UInt64 = 0xfec0_0000
    /// Local APIC page.
    public static let lapicBase: UInt64 = 0xfee0_0000
    /// The ISA BIOS window where the RSDP lives (0xe0000-0xfffff).
    public static let biosBase: UInt64 = 0xe_0000
    /// 128 KiB: the BIOS window's length (up to 1 MiB).
    public static let biosSize: UInt64 = 0x2_0000
    /// Conventional memory ends at 640 KiB (EBDA just below it).
    public static let conventionalEnd: UInt64 = 0xa_0000
    /// The EBDA QEMU reserves below 640 KiB.
    public static let ebdaBase: UInt64 = 0x9_fc00
    /// 4 GiB.
    public static let highMemoryBase: UInt64 = 1 << 32

    /// Splits `ramSize` bytes around the PCI hole: below 4 GiB up to 3.5 GiB, or 3 GiB when
    /// `ramSize` is 3.5 GiB or more; the rest at 4 GiB. QEMU: pc_init1() lowmem.
    public init(ramSize: UInt64) {
        let lowmem: UInt64 = ramSize >= 0xe000_0000 ? 0xc000_0000 : 0xe000_0000
        if ramSize >= lowmem {
            below4G = lowmem
            above4G = ramSize - lowmem
        } else {
            below4G = ramSize
            above4G = 0
        }
    }

    /// First address of the 32-bit PCI MMIO window (QEMU: pci_hole start).
    public var pciHoleStart: UInt64 { max(below4G, 0x8000_0000) }

    /// An entry of the guest's memory map (e820 / Multiboot mmap).
    public struct MapEntry: Sendable, Equatable {
        /// The entry's e820 type: usable RAM, reserved, or ACPI tables (reclaimable). QEMU: E820_RAM, E820_RESERVED, E820_ACPI.
        public enum Kind: UInt32, Sendable { case usable = 1, reserved = 2, acpi = 3 }
        /// First guest-physical address.
        public var base: UInt64
        /// Length in bytes.
        public var length: UInt64
        /// What the range is.
        public var kind: Kind
    }

    /// Top of low RAM SeaBIOS keeps for its tables (reported reserved).
    public static let firmwareTablesSize: UInt64 = 0x2_0000
    /// KVM's identity-map page and TSS pages, as QEMU places them (reported reserved).
    public static let kvmIdentityMap: UInt64 = 0xfeff_c000
    /// KVM's TSS pages (three), just above the identity-map page. QEMU: kvm_arch_init() (KVM_SET_TSS_ADDR).
    public static let kvmTSS: UInt64 = 0xfeff_d000

    /// The memory map the guest is told, entry for entry as QEMU's pc with SeaBIOS reports
    /// it: usable RAM below the EBDA; the EBDA and BIOS area reserved; usable RAM from 1 MiB to
    /// the firmware's tables at the top of low RAM; KVM's identity-map/TSS pages; the BIOS
    /// flash; RAM above 4 GiB; and, on AMD hosts, the HyperTransport hole QEMU 7.2 reserves.
    public func memoryMap(amdHost: Bool = false) -> [MapEntry] {
        var map: [MapEntry] = [
            MapEntry(base: 0, length: min(Self.ebdaBase, below4G), kind: .usable),
        ]
        if below4G > Self.ebdaBase {
            map.append(MapEntry(base: Self.ebdaBase, length: Self.conventionalEnd - Self.ebdaBase, kind: .reserved))
        }
        map.append(MapEntry(base: 0xf_0000, length: 0x1_0000, kind: .reserved))
        if below4G > 0x10_0000 + Self.firmwareTablesSize {
            map.append(MapEntry(base: 0x10_0000, length: below4G - Self.firmwareTablesSize - 0x10_0000, kind: .usable))
            map.append(MapEntry(base: below4G - Self.firmwareTablesSize, length: Self.firmwareTablesSize, kind: .reserved))
        } else if below4G > 0x10_0000 {
            map.append(MapEntry(base: 0x10_0000, length: below4G - 0x10_0000, kind: .usable))
        }
        map.append(MapEntry(base: Self.kvmIdentityMap, length: 0x4000, kind: .reserved))
        map.append(MapEntry(base: 0xfffc_0000, length: 0x4_0000, kind: .reserved))
        if above4G > 0 {
            map.append(MapEntry(base: Self.highMemoryBase, length: above4G, kind: .usable))
        }
        if amdHost {
            map.append(MapEntry(base: 0xfd_0000_0000, length: 0x3_0000_0000, kind: .reserved))
        }
        return map
    }

    /// QEMU's own e820 table (fw_cfg "etc/e820", before firmware adds its entries): RAM
    /// below and above 4 GiB, KVM's identity-map/TSS pages, the AMD HyperTransport hole.
    /// QEMU: `e820_add_entry()` calls in pc.c and kvm.c.
    public func qemuE820Table(amdHost: Bool) -> [MapEntry] {
        var t = [MapEntry(base: 0, length: below4G, kind: .usable)]
        if above4G > 0 { t.append(MapEntry(base: Self.highMemoryBase, length: above4G, kind: .usable)) }
        t.append(MapEntry(base: Self.kvmIdentityMap, length: 0x4000, kind: .reserved))
        if amdHost { t.append(MapEntry(base: 0xfd_0000_0000, length: 0x3_0000_0000, kind: .reserved)) }
        return t
    }

    /// The map without the AMD-only entry.
    public var memoryMap: [MapEntry] { memoryMap(amdHost: false) }

}
