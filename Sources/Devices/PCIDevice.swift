import Memory
import Synchronization

/// A conventional PCI function with a type-0 header: 256 bytes of configuration space with
/// per-byte write masks, up to six BARs backed by `MemoryRegion`s, and the command register's
/// I/O and memory decode bits.
///
/// BAR sizing works as on hardware: writing all ones reads back ~(size-1) with the type bits.
/// Whenever a config write touches the command register or a BAR, the BARs are re-evaluated
/// and each whose effective address changed is unmapped from / mapped into the bus's I/O or
/// memory container (priority 1, as QEMU overlaps BARs) in one memory transaction, so any
/// ioeventfds inside a BAR follow it in a single add/del diff. A BAR is unmapped while its
/// decode bit is clear, when it is 0, or when it would wrap 32 bits.
///
/// Subclasses add behaviour by overriding `configRead`/`configWrite` (calling super). All
/// state is behind a `Mutex`; the class is `@unchecked Sendable` only because Swift requires
/// that spelling for open classes — every stored property is a `let` of a Sendable type.
/// QEMU: PCIDevice (hw/pci/pci.c: pci_default_read/write_config, pci_update_mappings).
open class PCIDevice: @unchecked Sendable {
    public enum BARKind: Sendable, Equatable {
        /// 32-bit, non-prefetchable memory (type bits 0b0000).
        case memory32
        /// I/O ports (bit 0 set).
        case io
    }

    /// Config-space register offsets. QEMU: include/hw/pci/pci_regs.h.
    public enum Register {
        public static let vendorID = 0x00, deviceID = 0x02, command = 0x04, status = 0x06
        public static let revision = 0x08, classProg = 0x09, classDevice = 0x0a
        public static let cacheLineSize = 0x0c, latencyTimer = 0x0d, headerType = 0x0e
        public static let bar0 = 0x10, subsystemVendorID = 0x2c, subsystemID = 0x2e
        public static let romAddress = 0x30, interruptLine = 0x3c, interruptPin = 0x3d
    }

    public static let commandIO: UInt16 = 0x1
    public static let commandMemory: UInt16 = 0x2
    public static let commandMaster: UInt16 = 0x4
    public static let commandSERR: UInt16 = 0x100
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
        /// Where BARs map; set when the device is plugged into a host bridge.
        var ioSpace: MemoryRegion?
        var memorySpace: MemoryRegion?
        /// Where the next capability goes (capabilities live from 0x40 up).
        var nextCapability = 0x40
        var lastCapability: Int?
    }

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

    /// Declares BAR `index` (0-5) backed by `region`, whose size must be a power of two (at
    /// least 16 bytes for memory, 4 for I/O). Call before the device is plugged in.
    /// QEMU: pci_register_bar().
    public func registerBAR(_ index: Int, region: MemoryRegion, kind: BARKind) {
        let size128 = region.size
        precondition((0..<6).contains(index), "BAR index \(index) out of range")
        precondition(size128 <= UInt128(UInt32.max) && size128 & (size128 &- 1) == 0,
                     "BAR size must be a power of two below 4 GiB")
        let size = UInt64(size128)
        precondition(size >= (kind == .io ? 4 : 16), "BAR too small")
        state.withLock { s in
            s.bars[index] = BAR(region: region, kind: kind, size: size, mappedAt: nil)
            let at = Register.bar0 + 4 * index
            let type: UInt32 = kind == .io ? 0x1 : 0x0
            let mask = ~UInt32(size - 1)
            for i in 0..<4 {
                s.bytes[at + i] = UInt8(truncatingIfNeeded: type >> (8 * UInt32(i)))
                s.wmask[at + i] = UInt8(truncatingIfNeeded: mask >> (8 * UInt32(i)))
            }
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
                s.bytes[at + i] = i == 1 ? 0 : b
                s.wmask[at + i] = writeMask.map { i < $0.count ? $0[i] : 0 } ?? 0
            }
            if let last = s.lastCapability { s.bytes[last + 1] = UInt8(at) } else { s.bytes[0x34] = UInt8(at) }
            s.bytes[Register.status] |= 0x10                  // capability list present
            s.lastCapability = at
            s.nextCapability = (at + bytes.count + 3) & ~3
            return at
        }
    }

    /// Connects the device to the containers its BARs map into (done by the host bridge).
    func attach(ioSpace: MemoryRegion, memorySpace: MemoryRegion) {
        state.withLock { s in
            s.ioSpace = ioSpace
            s.memorySpace = memorySpace
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

    /// Size and kind of each declared BAR (nil where none).
    public var bars: [(kind: BARKind, size: UInt64)?] {
        state.withLock { s in s.bars.map { b in b.map { ($0.kind, $0.size) } } }
    }

    // MARK: Mapping (lock held)

    /// The address BAR `index` decodes at now, or nil. QEMU: pci_bar_address().
    private func effectiveAddress(_ s: State, _ index: Int) -> UInt64? {
        guard let bar = s.bars[index] else { return nil }
        let cmd = UInt16(s.bytes[Register.command]) | UInt16(s.bytes[Register.command + 1]) << 8
        let at = Register.bar0 + 4 * index
        var raw: UInt64 = 0
        for i in 0..<4 { raw |= UInt64(s.bytes[at + i]) << (8 * UInt64(i)) }
        switch bar.kind {
        case .io:
            guard cmd & PCIDevice.commandIO != 0 else { return nil }
        case .memory32:
            guard cmd & PCIDevice.commandMemory != 0 else { return nil }
        }
        let base = raw & ~(bar.size - 1) & 0xffff_ffff
        let last = base + bar.size - 1          // cannot overflow: both below 2^32
        guard base != 0, last > base, last < 0xffff_ffff else { return nil }
        return base
    }

    /// Brings every BAR's mapping in line with config space, in one memory transaction.
    /// QEMU: pci_update_mappings().
    private func updateMappings(_ s: inout State) {
        guard let io = s.ioSpace, let memory = s.memorySpace else { return }
        var changes: [(index: Int, old: UInt64?, new: UInt64?)] = []
        for i in 0..<6 {
            guard let bar = s.bars[i] else { continue }
            let new = effectiveAddress(s, i)
            if new != bar.mappedAt { changes.append((i, bar.mappedAt, new)) }
        }
        guard !changes.isEmpty else { return }
        memory.withTransaction {
            for c in changes {
                guard let bar = s.bars[c.index] else { continue }
                let container = bar.kind == .io ? io : memory
                if c.old != nil { container.removeSubregion(bar.region) }
                if let new = c.new { container.addSubregion(bar.region, at: new, priority: 1) }
                s.bars[c.index]?.mappedAt = c.new
            }
        }
    }
}
