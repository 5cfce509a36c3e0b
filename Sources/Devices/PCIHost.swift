import Memory
import Synchronization

public enum PCIError: Error, Equatable, CustomStringConvertible {
    case slotInUse(Int)
    case noFreeSlot
    case invalidSlot(Int)

    public var description: String {
        switch self {
        case .slotInUse(let s): return "PCI slot \(s) is already in use"
        case .noFreeSlot: return "no free PCI slot on bus 0"
        case .invalidSlot(let s): return "PCI slot \(s) is not in 0...31"
        }
    }
}

/// Where firmware-style assignment put one BAR.
public struct PCIBARAssignment: Sendable, Equatable {
    public let slot: Int
    public let bar: Int
    public let kind: PCIDevice.BARKind
    public let address: UInt64
    public let size: UInt64
}

/// The i440FX host bridge itself, function 00:00.0. QEMU: i440FX (hw/pci-host/i440fx.c).
public final class I440FXBridge: PCIDevice, @unchecked Sendable {
    public init() {
        super.init(vendorID: 0x8086, deviceID: 0x1237, classCode: 0x06_00_00, revision: 0x02)
    }
}

/// PCI bus 0 behind an i440FX host bridge, reached through configuration mechanism #1: a
/// 32-bit address register at I/O 0xcf8 (bit 31 enable, bus 23:16, device 15:11, function
/// 10:8, register 7:2) and a data window at 0xcfc-0xcff taking byte, word or dword accesses at
/// the offset within. With the enable bit clear, or for any function nobody implements
/// (another bus included), the window reads all ones and ignores writes. Writes to the address
/// register other than a full dword at 0xcf8 are ignored, as QEMU does.
///
/// Devices plug in at 00:0N.0 (`register`); their BARs map into `ioSpace` and `memorySpace`.
/// With no firmware to program BARs, `assignBARs` does what SeaBIOS would: memory BARs
/// top-down from the top of the PCI hole, I/O BARs up from 0xc000, each aligned to its size,
/// largest first, then enables decoding. QEMU: i440FX-pcihost + pci_host (hw/pci/pci_host.c).
public final class PCIHost: Sendable {
    /// "pci-conf-idx", 4 ports at 0xcf8.
    public let addressRegion: MemoryRegion
    /// "pci-conf-data", 4 ports at 0xcfc.
    public let dataRegion: MemoryRegion
    public let bridge: I440FXBridge
    public let ioSpace: MemoryRegion
    public let memorySpace: MemoryRegion

    public static let addressPort: UInt64 = 0xcf8
    public static let dataPort: UInt64 = 0xcfc

    private let configAddress = Mutex<UInt32>(0)
    /// Functions by devfn (slot << 3 | function); only function 0 is used.
    private let devices = Mutex<[Int: PCIDevice]>([:])

    /// - Parameters:
    ///   - ioSpace: the I/O port container I/O BARs map into.
    ///   - memorySpace: the container memory BARs map into (system memory, or a PCI window).
    public init(ioSpace: MemoryRegion, memorySpace: MemoryRegion) {
        self.ioSpace = ioSpace
        self.memorySpace = memorySpace
        bridge = I440FXBridge()
        let ref = DeviceRef<PCIHost>()
        addressRegion = .io(
            name: "pci-conf-idx", size: 4,
            ops: MemoryRegionOps(
                read: { offset, _ in ref.value?.readAddress(offset) ?? UInt64.max },
                write: { offset, value, size in ref.value?.writeAddress(offset, value, size) },
                valid: AccessConstraints(minAccessSize: 1, maxAccessSize: 4),
                implementation: AccessConstraints(minAccessSize: 1, maxAccessSize: 4)))
        dataRegion = .io(
            name: "pci-conf-data", size: 4,
            ops: MemoryRegionOps(
                read: { offset, size in ref.value?.readData(offset, size) ?? UInt64.max },
                write: { offset, value, size in ref.value?.writeData(offset, value, size) },
                valid: AccessConstraints(minAccessSize: 1, maxAccessSize: 4),
                implementation: AccessConstraints(minAccessSize: 1, maxAccessSize: 4)))
        ref.set(self)
        devices.withLock { $0[0] = bridge }
        bridge.attach(ioSpace: ioSpace, memorySpace: memorySpace)
    }

    /// Maps the configuration ports at 0xcf8/0xcfc in `io`.
    public func map(into io: MemoryRegion) {
        io.addSubregion(addressRegion, at: PCIHost.addressPort)
        io.addSubregion(dataRegion, at: PCIHost.dataPort)
    }

    /// Plugs `device` in at 00:`slot`.`function` (the lowest free slot from 1 when nil);
    /// returns the slot.
    @discardableResult
    public func register(_ device: PCIDevice, slot: Int? = nil, function: Int = 0) throws(PCIError) -> Int {
        let chosen: Result<Int, PCIError> = devices.withLock { d in
            if let slot {
                guard (0..<32).contains(slot), (0..<8).contains(function) else { return .failure(.invalidSlot(slot)) }
                guard d[slot << 3 | function] == nil else { return .failure(.slotInUse(slot)) }
                d[slot << 3 | function] = device
                return .success(slot)
            }
            guard let free = (1..<32).first(where: { d[$0 << 3] == nil }) else { return .failure(.noFreeSlot) }
            d[free << 3] = device
            return .success(free)
        }
        let slot = try chosen.get()
        device.attach(ioSpace: ioSpace, memorySpace: memorySpace)
        return slot
    }

    /// Every function on the bus, in slot/function order.
    public var functions: [(slot: Int, function: Int, device: PCIDevice)] {
        devices.withLock { d in d.keys.sorted().map { (slot: $0 >> 3, function: $0 & 7, device: d[$0]!) } }
    }

    /// The function at 00:`slot`.0.
    public func device(slot: Int) -> PCIDevice? {
        guard (0..<32).contains(slot) else { return nil }
        return devices.withLock { $0[slot << 3] }
    }

    /// Programs every BAR as firmware would and enables decoding on devices with BARs.
    /// Memory BARs go top-down below `mmioTop`, I/O BARs up from `ioBase`, each aligned to
    /// its size, largest first; a BAR that does not fit is left unassigned (and logged).
    @discardableResult
    public func assignBARs(mmioTop: UInt64, ioBase: UInt64 = 0xc000) -> [PCIBARAssignment] {
        let plugged = devices.withLock { d in d.sorted { $0.key < $1.key }.map { ($0.key >> 3, $0.value) } }
            .filter { $0.1 !== bridge }
        var wanted: [(slot: Int, device: PCIDevice, bar: Int, kind: PCIDevice.BARKind, size: UInt64)] = []
        for (slot, dev) in plugged {
            for (i, b) in dev.bars.enumerated() {
                if let b { wanted.append((slot, dev, i, b.kind, b.size)) }
            }
        }
        // Largest first keeps natural alignment without holes (stable for equal sizes).
        wanted = wanted.enumerated().sorted { l, r in
            l.element.size != r.element.size ? l.element.size > r.element.size : l.offset < r.offset
        }.map(\.element)
        var mmioCursor = mmioTop
        var ioCursor = ioBase
        var out: [PCIBARAssignment] = []
        // No enclosing transaction: each config write makes its own, so the memory system's
        // lock is never held while a device's lock is taken (devices take them the other way).
        for w in wanted {
            var address: UInt64
            switch w.kind {
            case .memory32:
                guard mmioCursor >= w.size else {
                    devicesLogger.error("PCI 00:\(w.slot).0 BAR\(w.bar): no room for \(w.size) bytes of MMIO")
                    continue
                }
                address = (mmioCursor - w.size) & ~(w.size - 1)
                mmioCursor = address
            case .io:
                let (aligned, o1) = ioCursor.addingReportingOverflow(w.size - 1)
                address = aligned & ~(w.size - 1)
                let (end, o2) = address.addingReportingOverflow(w.size)
                guard !o1, !o2, end <= 0x10000 else {
                    devicesLogger.error("PCI 00:\(w.slot).0 BAR\(w.bar): no room for \(w.size) I/O ports")
                    continue
                }
                ioCursor = end
            }
            w.device.configWrite(offset: PCIDevice.Register.bar0 + 4 * w.bar, value: UInt32(truncatingIfNeeded: address), size: 4)
            out.append(PCIBARAssignment(slot: w.slot, bar: w.bar, kind: w.kind, address: address, size: w.size))
        }
        // As SeaBIOS's pci_bios_init_device: I/O, memory and SERR on for every function
        // (the write mask keeps what a function does not implement).
        for (_, dev) in plugged {
            let cmd = dev.command | PCIDevice.commandIO | PCIDevice.commandMemory | PCIDevice.commandSERR
            dev.configWrite(offset: PCIDevice.Register.command, value: UInt32(cmd), size: 2)
        }
        return out
    }

    // MARK: Mechanism #1

    /// The current CONFIG_ADDRESS value.
    public var currentConfigAddress: UInt32 { configAddress.withLock { $0 } }

    func readAddress(_ offset: UInt64) -> UInt64 {
        UInt64(configAddress.withLock { $0 }) >> (8 * (offset & 3))
    }

    func writeAddress(_ offset: UInt64, _ value: UInt64, _ size: Int) {
        guard offset == 0, size == 4 else { return }
        configAddress.withLock { $0 = UInt32(truncatingIfNeeded: value) }
    }

    /// The addressed function and register, or nil when disabled / nothing there.
    private func target(_ offset: UInt64) -> (PCIDevice, Int)? {
        let addr = configAddress.withLock { $0 }
        guard addr & 0x8000_0000 != 0, (addr >> 16) & 0xff == 0 else { return nil }
        let devfn = Int((addr >> 8) & 0xff)
        guard let dev = devices.withLock({ $0[devfn] }) else { return nil }
        return (dev, Int(addr & 0xfc) | Int(offset & 3))
    }

    func readData(_ offset: UInt64, _ size: Int) -> UInt64 {
        guard let (dev, reg) = target(offset) else { return UInt64.max }
        return UInt64(dev.configRead(offset: reg, size: size))
    }

    func writeData(_ offset: UInt64, _ value: UInt64, _ size: Int) {
        guard let (dev, reg) = target(offset) else { return }
        dev.configWrite(offset: reg, value: UInt32(truncatingIfNeeded: value), size: size)
    }
}
