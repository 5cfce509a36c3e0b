import Memory
import Synchronization

/// One Programmable Attribute Map segment of the i440FX: a window of 0xc0000-0xfffff that shows,
/// as its two PAM bits select, PCI (0: reads and writes go to the bus, where the BIOS ROM and
/// option ROMs are), read-only RAM (1), RAM for writes only (2; QEMU maps plain RAM, and so does
/// this), or RAM (3). Four aliases mapped over system memory at priority 1, exactly one of them
/// enabled. QEMU: PAMMemoryRegion, init_pam(), pam_update() (hw/pci-host/pam.c).
public final class PAMSegment: Sendable {
    /// The segment's first address (0xc0000-0xfc000 in 16 KiB steps, or 0xf0000).
    public let start: UInt64
    /// The segment's length: 64 KiB for 0xf0000, else 16 KiB.
    public let size: UInt64
    /// By PAM mode: 0 "pam-pci" onto PCI memory, 1 "pam-rom" (read-only RAM), 2 "pam-pci" onto
    /// RAM, 3 "pam-ram".
    public let aliases: [MemoryRegion]
    private let current = Mutex<Int>(0)

    /// Creates the four aliases and maps them into `system`, only mode 0 enabled (QEMU enables it
    /// at the first i440fx_update_memory_mappings()).
    init(start: UInt64, size: UInt64, ram: MemoryRegion, pci: MemoryRegion, system: MemoryRegion) {
        self.start = start
        self.size = size
        let rom = MemoryRegion.alias(name: "pam-rom", target: ram, offset: start, size: UInt128(size))
        rom.setReadOnly(true)
        aliases = [
            MemoryRegion.alias(name: "pam-pci", target: pci, offset: start, size: UInt128(size)),
            rom,
            MemoryRegion.alias(name: "pam-pci", target: ram, offset: start, size: UInt128(size)),
            MemoryRegion.alias(name: "pam-ram", target: ram, offset: start, size: UInt128(size)),
        ]
        system.withTransaction {
            for (mode, alias) in aliases.enumerated() {
                alias.setEnabled(mode == 0)
                system.addSubregion(alias, at: start, priority: 1)
            }
        }
    }

    /// The PAM mode now shown (0-3).
    public var mode: Int { current.withLock { $0 } }

    /// Shows `mode` (two bits): the old alias off, the new one on, in the caller's transaction.
    /// QEMU: pam_update().
    func show(_ mode: Int) {
        current.withLock { c in
            let new = mode & 3
            guard new != c else { return }
            aliases[c].setEnabled(false)
            aliases[new].setEnabled(true)
            c = new
        }
    }
}

/// The i440FX's memory controls over the legacy areas: the 13 PAM segments (0xf0000 64 KiB
/// under PAM0's high nibble, then 0xc0000-0xeffff in 16 KiB segments under PAM1-PAM6, low
/// nibble first) and SMRAM's D_OPEN bit, which hides the VGA window (0xa0000-0xbffff, PCI
/// memory through "smram-region") to show RAM below. All changes from one configuration write
/// are applied in one memory transaction, so no vCPU sees half of a switch.
/// There is no SMM here: the "smram" container that SMM CPUs would see is not built, and
/// G_SMRAME has no effect (QEMU: it enables that container; without SMM nothing uses it).
/// QEMU: i440fx_update_memory_mappings(), init_pam() calls in i440fx_init().
public final class I440FXMemoryControl: Sendable {
    /// PAM0 at 0x59 .. PAM6 at 0x5f; SMRAM at 0x72.
    public static let pamRegister = 0x59, pamCount = 7, smramRegister = 0x72
    /// SMRAM bits. QEMU: SMRAM_D_OPEN, SMRAM_G_SMRAME.
    public static let smramDOpen: UInt8 = 0x40, smramGSMRAME: UInt8 = 0x08
    /// SMRAM's reset value (C_BASE_SEG = 010b: the compatible SMRAM at 0xa0000). QEMU: i440fx_realize().
    public static let smramReset: UInt8 = 0x02

    /// The 13 segments: 0xf0000 (PAM0) first, then 0xc0000-0xeffff in 16 KiB steps. QEMU: init_pam() calls in i440fx_init().
    public let segments: [PAMSegment]
    /// PCI memory over the VGA window while D_OPEN is clear. QEMU: "smram-region".
    public let smramRegion: MemoryRegion
    private let system: MemoryRegion
    /// Serializes reading the registers and applying them, so two vCPUs' writes apply in order.
    private let applying = Mutex<Void>(())

    /// - Parameters:
    ///   - ram: all of guest RAM ("pc.ram"), which the RAM modes show at the same addresses.
    ///   - pci: PCI memory ("pci").
    ///   - system: the system memory root the aliases map into.
    public init(ram: MemoryRegion, pci: MemoryRegion, system: MemoryRegion) {
        self.system = system
        smramRegion = MemoryRegion.alias(name: "smram-region", target: pci, offset: 0xa_0000, size: 0x2_0000)
        system.addSubregion(smramRegion, at: 0xa_0000, priority: 1)
        var segments = [PAMSegment(start: 0xf_0000, size: 0x1_0000, ram: ram, pci: pci, system: system)]
        for i in 0..<12 {
            segments.append(PAMSegment(start: 0xc_0000 + UInt64(i) * 0x4000, size: 0x4000, ram: ram, pci: pci, system: system))
        }
        self.segments = segments
    }

    /// The PAM mode segment `index` takes from the seven PAM registers: segment 0 (0xf0000)
    /// PAM0's high nibble; segment i ≥ 1 register PAM[(i + 1) / 2], low nibble for odd i, high for
    /// even. QEMU: pam_update() with config[I440FX_PAM + DIV_ROUND_UP(i, 2)].
    public static func mode(of index: Int, _ pam: [UInt8]) -> Int {
        let register = pam[(index + 1) / 2]
        return Int(index & 1 == 1 ? register & 3 : (register >> 4) & 3)
    }

    /// Brings the mappings in line with the registers: `read` gives the bridge's configuration
    /// bytes (read under the serializing lock, so the last writer's values win).
    public func update(read: (_ offset: Int, _ count: Int) -> [UInt8]) {
        applying.withLock { _ in
            let pam = read(Self.pamRegister, Self.pamCount)
            let smram = read(Self.smramRegister, 1).first ?? Self.smramReset
            system.withTransaction {
                for (i, segment) in segments.enumerated() { segment.show(Self.mode(of: i, pam)) }
                smramRegion.setEnabled(smram & Self.smramDOpen == 0)
            }
        }
    }
}
