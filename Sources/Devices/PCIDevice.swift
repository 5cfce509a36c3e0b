import Memory
import Synchronization

/// A conventional PCI function with a type-0 header: 256 bytes of configuration space with
/// per-byte write masks, up to six BARs backed by `MemoryRegion`s, and the command register's
/// I/O and memory decode bits.
///
/// BAR sizing works as on hardware: writing all ones reads back ~(size-1) with the type bits;
/// a 64-bit BAR takes two registers, the upper one writable too. Whenever a config write
/// touches the command register or a BAR, the BARs are re-evaluated and each whose effective
/// address changed is unmapped from / mapped into the bus's I/O or memory container (priority
/// 1, as QEMU overlaps BARs) in one memory transaction, so any ioeventfds inside a BAR follow
/// it in a single add/del diff. Any value may be written to any BAR register (or the ROM BAR):
/// a BAR that would decode at 0, wrap, or (32-bit) reach 4 GiB is simply unmapped, as QEMU's
/// `pci_bar_address()` decides.
///
/// Deliberate difference from QEMU: an I/O BAR that would overlap the host bridge's
/// configuration ports (0xcf8-0xcff) is left unmapped. QEMU 7.2 maps it over them (BARs sit at
/// priority 1 above `pci-conf-idx`/`pci-conf-data`), after which every configuration access
/// reaches the device instead and the guest can never move the BAR away again (checked with
/// `Guests/tests/pcibar.c`); on a real i440FX the host bridge claims those ports first.
///
/// Subclasses add behaviour by overriding `configRead`/`configWrite` (calling super). All
/// state is behind a `Mutex`; the class is `@unchecked Sendable` only because Swift requires
/// that spelling for open classes — every stored property is a `let` of a Sendable type.
/// QEMU: PCIDevice (hw/pci/pci.c: pci_default_read/write_config, pci_update_mappings).
open class PCIDevice: @unchecked Sendable {
    /// What a BAR decodes and how it is programmed. QEMU: the `type` argument of
    /// `pci_register_bar()` (`PCI_BASE_ADDRESS_SPACE_IO`, `PCI_BASE_ADDRESS_MEM_TYPE_64`,
    /// `PCI_BASE_ADDRESS_MEM_PREFETCH`).
    public enum BARKind: Sendable, Equatable {
        /// I/O ports (type bits 0b01).
        case io
        /// 32-bit, non-prefetchable memory (type bits 0b0000).
        case memory32
        /// 32-bit prefetchable memory (type bits 0b1000).
        case memory32Prefetchable
        /// 64-bit non-prefetchable memory: this register and the next (type bits 0b0100).
        case memory64
        /// 64-bit prefetchable memory: this register and the next (type bits 0b1100), as
        /// QEMU's virtio-pci BAR 4.
        case memory64Prefetchable

        /// Whether the BAR decodes I/O ports.
        public var isIO: Bool { self == .io }
        /// Whether the BAR takes two registers (a 64-bit address).
        public var is64Bit: Bool { self == .memory64 || self == .memory64Prefetchable }
        /// Whether the BAR is prefetchable memory.
        public var isPrefetchable: Bool { self == .memory32Prefetchable || self == .memory64Prefetchable }

        /// The read-only low bits of the BAR register. QEMU: pci_register_bar().
        var typeBits: UInt32 {
            switch self {
            case .io: return 0x1
            case .memory32: return 0x0
            case .memory32Prefetchable: return 0x8
            case .memory64: return 0x4
            case .memory64Prefetchable: return 0xc
            }
        }
    }

    /// Config-space register offsets. QEMU: include/hw/pci/pci_regs.h.
    public enum Register {
        /// Identity, command and status registers.
        public static let vendorID = 0x00, deviceID = 0x02, command = 0x04, status = 0x06
        /// Revision and class code.
        public static let revision = 0x08, classProg = 0x09, classDevice = 0x0a
        /// Cache line size, latency timer and header type.
        public static let cacheLineSize = 0x0c, latencyTimer = 0x0d, headerType = 0x0e
        /// BAR 0 (BAR n is at bar0 + 4n) and the subsystem IDs.
        public static let bar0 = 0x10, subsystemVendorID = 0x2c, subsystemID = 0x2e
        /// The expansion ROM BAR and the INTx line and pin.
        public static let romAddress = 0x30, interruptLine = 0x3c, interruptPin = 0x3d
    }

    /// Command bit: I/O BARs decode. QEMU: PCI_COMMAND_IO.
    public static let commandIO: UInt16 = 0x1
    /// Command bit: memory BARs decode. QEMU: PCI_COMMAND_MEMORY.
    public static let commandMemory: UInt16 = 0x2
    /// Command bit: bus mastering (the device may DMA). QEMU: PCI_COMMAND_MASTER.
    public static let commandMaster: UInt16 = 0x4
    /// Command bit: SERR# enable. QEMU: PCI_COMMAND_SERR.
    public static let commandSERR: UInt16 = 0x100
    /// Command bit: INTx disabled (the pin is not asserted). QEMU: PCI_COMMAND_INTX_DISABLE.
    public static let commandIntxDisable: UInt16 = 0x400

    struct BAR {
        let region: MemoryRegion
        let kind: BARKind
        let size: UInt64
        var mappedAt: UInt64?
    }

    struct State {
        var bytes = [UInt8](repeating: 0, count: 256)
        var wmask = [UInt8](repeating: 0, count: 256)
        var bars = [BAR?](repeating: nil, count: 6)
        /// Registers holding the upper half of the 64-bit BAR below them.
        var upperHalf = [Bool](repeating: false, count: 6)
        /// Where BARs map; set when the device is plugged into a host bridge.
        var ioSpace: MemoryRegion?
        var memorySpace: MemoryRegion?
        /// I/O ports no I/O BAR may cover (the host bridge's configuration ports).
        var protectedIO: Range<UInt64>?
        /// Where the next capability goes (capabilities live from 0x40 up).
        var nextCapability = 0x40
        /// The expansion ROM behind the ROM BAR (config 0x30), if any.
        var rom: BAR?
    }

    /// The ROM BAR's enable bit (config 0x30 bit 0). QEMU: PCI_ROM_ADDRESS_ENABLE.
    public static let romEnable: UInt32 = 0x1

    private let state: Mutex<State>

    /// - Parameters:
    ///   - classCode: 24 bits, class << 16 | subclass << 8 | programming interface.
    public init(vendorID: UInt16, deviceID: UInt16, classCode: UInt32, revision: UInt8 = 0,
                interruptPin: UInt8 = 0, subsystemVendorID: UInt16 = 0x1af4, subsystemID: UInt16 = 0x1100) {
        var s = State()
        func put16(_ at: Int, _ v: UInt16) { s.bytes[at] = UInt8(v & 0xff); s.bytes[at + 1] = UInt8(v >> 8) }
        put16(Register.vendorID, vendorID)
        put16(Register.deviceID, deviceID)
        s.bytes[Register.revision] = revision
        s.bytes[Register.classProg] = UInt8(truncatingIfNeeded: classCode)
        s.bytes[Register.classDevice] = UInt8(truncatingIfNeeded: classCode >> 8)
        s.bytes[Register.classDevice + 1] = UInt8(truncatingIfNeeded: classCode >> 16)
        s.bytes[Register.headerType] = 0
        // QEMU's default subsystem ids for devices that set none (Red Hat / QEMU).
        put16(Register.subsystemVendorID, subsystemVendorID)
        put16(Register.subsystemID, subsystemID)
        s.bytes[Register.interruptPin] = interruptPin
        // Writable bits, as QEMU's pci_init_wmask.
        let cmd = PCIDevice.commandIO | PCIDevice.commandMemory | PCIDevice.commandMaster | PCIDevice.commandSERR
            | PCIDevice.commandIntxDisable
        s.wmask[Register.command] = UInt8(cmd & 0xff)
        s.wmask[Register.command + 1] = UInt8(cmd >> 8)
        s.wmask[Register.cacheLineSize] = 0xff
        s.wmask[Register.interruptLine] = 0xff
        state = Mutex(s)
    }

    /// Sets the header type's multi-function bit (function 0 of a multi-function device).
    public func setMultiFunction(_ on: Bool) {
        state.withLock { $0.bytes[Register.headerType] = on ? 0x80 : 0 }
    }

    /// Declares BAR `index` backed by `region`, whose size must be a power of two (at least 16
    /// bytes for memory, 4 for I/O; below 4 GiB unless 64-bit). A 64-bit BAR (`.memory64`,
    /// `.memory64Prefetchable`) also takes register `index + 1` for the upper half of its
    /// address, so `index` is 0-4 for it (0-5 otherwise). Call before the device is plugged
    /// in; a bad declaration is a programming error and traps. QEMU: pci_register_bar().
    public func registerBAR(_ index: Int, region: MemoryRegion, kind: BARKind) {
        let size128 = region.size
        let registers = kind.is64Bit ? 2 : 1
        precondition(index >= 0 && index + registers <= 6, "BAR index \(index) out of range for \(kind)")
        let limit: UInt128 = kind.is64Bit ? UInt128(1) << 63 : UInt128(1) << 31
        precondition(size128 > 0 && size128 <= limit && size128 & (size128 &- 1) == 0,
                     "BAR size must be a power of two of at most \(limit) bytes")
        let size = UInt64(size128)
        precondition(size >= (kind == .io ? 4 : 16), "BAR too small")
        state.withLock { s in
            for r in index..<(index + registers) {
                precondition(s.bars[r] == nil && !s.upperHalf[r], "BAR register \(r) already in use")
            }
            s.bars[index] = BAR(region: region, kind: kind, size: size, mappedAt: nil)
            // Writable address bits: ~(size - 1), over 64 bits for a 64-bit BAR.
            let mask = ~(size - 1)
            let at = Register.bar0 + 4 * index
            for i in 0..<4 {
                s.bytes[at + i] = UInt8(truncatingIfNeeded: kind.typeBits >> (8 * UInt32(i)))
                s.wmask[at + i] = UInt8(truncatingIfNeeded: mask >> (8 * UInt64(i)))
            }
            if kind.is64Bit {
                s.upperHalf[index + 1] = true
                for i in 0..<4 {
                    s.bytes[at + 4 + i] = 0
                    s.wmask[at + 4 + i] = UInt8(truncatingIfNeeded: mask >> (32 + 8 * UInt64(i)))
                }
            }
        }
    }

    /// Declares the expansion ROM behind the ROM BAR at config 0x30: `region` (a ROM whose size
    /// is a power of two from 16 bytes to 2 GiB) decodes in memory space when the
    /// BAR's enable bit and the command register's memory bit are both set. Sizing works as for
    /// a 32-bit memory BAR, the address bits below the size reading 0. Call before the device
    /// is plugged in.
    /// QEMU: pci_register_bar(PCI_ROM_SLOT) from pci_add_option_rom().
    public func registerROM(_ region: MemoryRegion) {
        let size128 = region.size
        precondition(size128 >= 16 && size128 <= UInt128(1) << 31 && size128 & (size128 &- 1) == 0,
                     "ROM size must be a power of two from 16 bytes to 2 GiB")
        let size = UInt64(size128)
        state.withLock { s in
            precondition(s.rom == nil, "ROM BAR already in use")
            s.rom = BAR(region: region, kind: .memory32, size: size, mappedAt: nil)
            let mask = UInt32(truncatingIfNeeded: ~(size - 1)) | PCIDevice.romEnable
            for i in 0..<4 {
                s.bytes[Register.romAddress + i] = 0
                s.wmask[Register.romAddress + i] = UInt8(truncatingIfNeeded: mask >> (8 * UInt32(i)))
            }
        }
    }

    /// The expansion ROM's size, if the device has one.
    public var romSize: UInt64? { state.withLock { $0.rom?.size } }

    /// Where the expansion ROM is currently mapped, or nil.
    public var romAddress: UInt64? { state.withLock { $0.rom?.mappedAt } }

    /// Sets configuration bytes from `offset` and which of their bits the guest may write (the
    /// same mask for each), as a device's realize() fills `config` and `wmask`. Bytes past 255
    /// are ignored. Not for the header's BAR and command registers (they have their own rules).
    public func setConfig(_ bytes: [UInt8], at offset: Int, writeMask: UInt8) {
        state.withLock { s in
            for (i, b) in bytes.enumerated() {
                let a = offset &+ i
                guard (0..<256).contains(a) else { continue }
                s.bytes[a] = b
                s.wmask[a] = writeMask
            }
        }
    }

    /// Reads `count` configuration bytes from `offset` (bytes past 255 read 0xff).
    public func configBytes(at offset: Int, count: Int) -> [UInt8] {
        state.withLock { s in
            (0..<max(0, count)).map { i in
                let a = offset &+ i
                return (0..<256).contains(a) ? s.bytes[a] : 0xff
            }
        }
    }

    /// The header registers back to their reset values on a system reset: the writable bits of
    /// command and status and the interrupt line cleared, the cache line size 0, every BAR back
    /// to its type bits (so nothing decodes until firmware programs it again). Device-specific
    /// registers are left alone. QEMU: pci_do_device_reset().
    public func resetHeader() {
        state.withLock { s in
            for r in [Register.command, Register.command + 1, Register.status, Register.status + 1, Register.interruptLine] {
                s.bytes[r] &= ~s.wmask[r]
            }
            s.bytes[Register.cacheLineSize] = 0
            if s.rom != nil { for b in 0..<4 { s.bytes[Register.romAddress + b] = 0 } }
            for (i, bar) in s.bars.enumerated() {
                guard let bar else { continue }
                let at = Register.bar0 + 4 * i
                for b in 0..<(bar.kind.is64Bit ? 8 : 4) {
                    s.bytes[at + b] = b < 4 ? UInt8(truncatingIfNeeded: bar.kind.typeBits >> (8 * UInt32(b))) : 0
                }
            }
            updateMappings(&s)
        }
    }

    /// Appends a capability (`bytes` starts with its ID; the next-pointer byte is filled in)
    /// with per-byte write masks; returns its config-space offset, or nil when it does not fit.
    /// QEMU: pci_add_capability().
    @discardableResult
    public func addCapability(_ bytes: [UInt8], writeMask: [UInt8]? = nil) -> Int? {
        state.withLock { s -> Int? in
            let at = s.nextCapability
            guard bytes.count >= 2, at + bytes.count <= 256 else { return nil }
            for (i, b) in bytes.enumerated() {
                s.bytes[at + i] = b
                s.wmask[at + i] = writeMask.map { i < $0.count ? $0[i] : 0 } ?? 0
            }
            // Linked at the head of the list, as QEMU's pci_add_capability() links it: the list
            // runs from the last capability added to the first.
            s.bytes[at + 1] = s.bytes[0x34]
            s.bytes[0x34] = UInt8(at)
            s.bytes[Register.status] |= 0x10                  // capability list present
            s.nextCapability = (at + bytes.count + 3) & ~3
            return at
        }
    }

    /// Connects the device to the containers its BARs map into (done by the host bridge);
    /// no I/O BAR maps over `protectedIO`.
    func attach(ioSpace: MemoryRegion, memorySpace: MemoryRegion, protectedIO: Range<UInt64>? = nil) {
        state.withLock { s in
            s.ioSpace = ioSpace
            s.memorySpace = memorySpace
            s.protectedIO = protectedIO
            updateMappings(&s)
        }
    }

    // MARK: Config space

    /// Reads `size` (1, 2 or 4) bytes at `offset`, little-endian; bytes past 255 read as ones.
    open func configRead(offset: Int, size: Int) -> UInt32 {
        state.withLock { s in
            var v: UInt32 = 0
            for i in 0..<max(0, min(size, 4)) {
                let a = offset &+ i
                let byte: UInt8 = (0..<256).contains(a) ? s.bytes[a] : 0xff
                v |= UInt32(byte) << (8 * UInt32(i))
            }
            return v
        }
    }

    /// Writes `size` bytes at `offset` through the write mask, then remaps BARs if the write
    /// touched the command register or a BAR. QEMU: pci_default_write_config().
    open func configWrite(offset: Int, value: UInt32, size: Int) {
        state.withLock { s in
            let n = max(0, min(size, 4))
            var touchesMapping = false
            for i in 0..<n {
                let a = offset &+ i
                guard (0..<256).contains(a) else { continue }
                let byte = UInt8(truncatingIfNeeded: value >> (8 * UInt32(i)))
                s.bytes[a] = (s.bytes[a] & ~s.wmask[a]) | (byte & s.wmask[a])
                if a == Register.command || (Register.bar0..<Register.bar0 + 24).contains(a)
                    || (Register.romAddress..<Register.romAddress + 4).contains(a) {
                    touchesMapping = true
                }
            }
            if touchesMapping { updateMappings(&s) }
        }
    }

    /// The command register.
    public var command: UInt16 { UInt16(truncatingIfNeeded: configRead(offset: Register.command, size: 2)) }

    /// Where BAR `index` is currently mapped, or nil.
    public func barAddress(_ index: Int) -> UInt64? {
        guard (0..<6).contains(index) else { return nil }
        return state.withLock { $0.bars[index]?.mappedAt }
    }

    /// Size and kind of each declared BAR, by register index (nil where none, and at the
    /// register holding a 64-bit BAR's upper half).
    public var bars: [(kind: BARKind, size: UInt64)?] {
        state.withLock { s in s.bars.map { b in b.map { ($0.kind, $0.size) } } }
    }

    // MARK: Mapping (lock held)

    /// The address BAR `index` decodes at now, or nil when unmapped. QEMU: pci_bar_address()
    /// (i440FX: no BAR decodes at address 0), plus the protected configuration ports.
    private func effectiveAddress(_ s: State, _ index: Int) -> UInt64? {
        guard let bar = s.bars[index] else { return nil }
        let cmd = UInt16(s.bytes[Register.command]) | UInt16(s.bytes[Register.command + 1]) << 8
        func register(_ at: Int) -> UInt64 {
            var v: UInt64 = 0
            for i in 0..<4 { v |= UInt64(s.bytes[at + i]) << (8 * UInt64(i)) }
            return v
        }
        let at = Register.bar0 + 4 * index
        var raw = register(at)
        if bar.kind.is64Bit { raw |= register(at + 4) << 32 }
        guard cmd & (bar.kind.isIO ? PCIDevice.commandIO : PCIDevice.commandMemory) != 0 else { return nil }
        let base = raw & ~(bar.size - 1)
        let (last, wraps) = base.addingReportingOverflow(bar.size - 1)
        guard base != 0, !wraps, last > base, last != UInt64.max else { return nil }
        // A 32-bit BAR (memory or I/O) may not reach the last byte below 4 GiB.
        if !bar.kind.is64Bit && last >= 0xffff_ffff { return nil }
        if bar.kind.isIO, let p = s.protectedIO, base < p.upperBound, last >= p.lowerBound { return nil }
        return base
    }

    /// The address the expansion ROM decodes at now, or nil: memory decoding on, the ROM BAR's
    /// enable bit set, and the address neither 0 nor reaching 4 GiB. QEMU: pci_bar_address()
    /// (PCI_ROM_SLOT keeps its enable bit apart from the address).
    private func effectiveROMAddress(_ s: State) -> UInt64? {
        guard let rom = s.rom else { return nil }
        let cmd = UInt16(s.bytes[Register.command]) | UInt16(s.bytes[Register.command + 1]) << 8
        var raw: UInt64 = 0
        for i in 0..<4 { raw |= UInt64(s.bytes[Register.romAddress + i]) << (8 * UInt64(i)) }
        guard cmd & PCIDevice.commandMemory != 0, raw & UInt64(PCIDevice.romEnable) != 0 else { return nil }
        let base = raw & ~(rom.size - 1)
        guard base != 0, base + rom.size - 1 < 0xffff_ffff else { return nil }
        return base
    }

    /// Brings every BAR's mapping (and the ROM's) in line with config space, in one memory
    /// transaction. QEMU: pci_update_mappings().
    private func updateMappings(_ s: inout State) {
        guard let io = s.ioSpace, let memory = s.memorySpace else { return }
        var changes: [(index: Int, old: UInt64?, new: UInt64?)] = []
        for i in 0..<6 {
            guard let bar = s.bars[i] else { continue }
            let new = effectiveAddress(s, i)
            if new != bar.mappedAt { changes.append((i, bar.mappedAt, new)) }
        }
        let romNew = effectiveROMAddress(s)
        let romChanged = s.rom != nil && romNew != s.rom?.mappedAt
        guard !changes.isEmpty || romChanged else { return }
        memory.withTransaction {
            for c in changes {
                guard let bar = s.bars[c.index] else { continue }
                let container = bar.kind.isIO ? io : memory
                if c.old != nil { container.removeSubregion(bar.region) }
                if let new = c.new { container.addSubregion(bar.region, at: new, priority: 1) }
                s.bars[c.index]?.mappedAt = c.new
            }
            if romChanged, let rom = s.rom {
                if rom.mappedAt != nil { memory.removeSubregion(rom.region) }
                if let romNew { memory.addSubregion(rom.region, at: romNew, priority: 1) }
                s.rom?.mappedAt = romNew
            }
        }
    }
}
