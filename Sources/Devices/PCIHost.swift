import Memory
import Synchronization

/// Why a device could not be plugged into bus 0 (configuration mistakes, never guest-caused).
public enum PCIError: Error, Equatable, CustomStringConvertible {
    /// `addr=` names a slot (and function) already taken. QEMU: do_pci_register_device().
    case slotInUse(Int)
    /// Every slot from 1 to 31 is taken. QEMU: do_pci_register_device().
    case noFreeSlot
    /// `addr=` outside slots 0-31 or functions 0-7.
    case invalidSlot(Int)

    /// The error as one line for the user.
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
    /// The device's slot on bus 0.
    public let slot: Int
    /// The BAR's index, 0-5, or `PCIHost.romSlot` for the expansion ROM.
    public let bar: Int
    /// I/O or memory (32/64-bit, prefetchable).
    public let kind: PCIDevice.BARKind
    /// The address written to the BAR.
    public let address: UInt64
    /// The BAR's size in bytes.
    public let size: UInt64
}

/// The i440FX host bridge itself, function 00:00.0. With firmware (`attachMemoryControl`) its
/// registers from 0x40 are writable, as QEMU leaves every device-specific register, and PAM0-6
/// (0x59-0x5f) and SMRAM (0x72) drive the legacy-area mappings; without firmware they read 0 and
/// the machine maps those areas as firmware would have left them. QEMU: i440FX
/// (hw/pci-host/i440fx.c: i440fx_realize(), i440fx_write_config()).
public final class I440FXBridge: PCIDevice, @unchecked Sendable {
    private let memoryControl = Mutex<I440FXMemoryControl?>(nil)

    /// The bridge with Intel's IDs (8086:1237, rev 2, host bridge class). QEMU: i440fx_class_init().
    public init() {
        super.init(vendorID: 0x8086, deviceID: 0x1237, classCode: 0x06_00_00, revision: 0x02)
    }

    /// Hands the PAM/SMRAM registers to `control` and makes 0x40-0xff writable; SMRAM reads its
    /// reset value 0x02 and register 0x57 the RAM size in 8 MiB units (at most 255), as QEMU
    /// sets them for old coreboot. QEMU: i440fx_realize(), i440fx_init() (I440FX_COREBOOT_RAM_SIZE).
    public func attachMemoryControl(_ control: I440FXMemoryControl, ramSize: UInt64) {
        setConfig([UInt8](repeating: 0, count: 0xc0), at: 0x40, writeMask: 0xff)
        setConfig([I440FXMemoryControl.smramReset], at: I440FXMemoryControl.smramRegister, writeMask: 0xff)
        setConfig([UInt8(min(ramSize >> 23, 255))], at: 0x57, writeMask: 0xff)
        memoryControl.withLock { $0 = control }
        control.update { configBytes(at: $0, count: $1) }
    }

    /// The PAM/SMRAM mappings, when firmware runs.
    public var memoryControls: I440FXMemoryControl? { memoryControl.withLock { $0 } }

    /// A write touching PAM0-6 or SMRAM re-applies the mappings (in one transaction).
    /// QEMU: i440fx_write_config().
    public override func configWrite(offset: Int, value: UInt32, size: Int) {
        super.configWrite(offset: offset, value: value, size: size)
        guard let control = memoryControl.withLock({ $0 }) else { return }
        let end = offset &+ max(0, min(size, 4))
        let pam = I440FXMemoryControl.pamRegister..<(I440FXMemoryControl.pamRegister + I440FXMemoryControl.pamCount)
        let touched = (offset..<max(offset, end)).contains { pam.contains($0) || $0 == I440FXMemoryControl.smramRegister }
        if touched { control.update { configBytes(at: $0, count: $1) } }
    }
}

/// PCI bus 0 behind an i440FX host bridge, reached through configuration mechanism #1: a
/// 32-bit address register at I/O 0xcf8 (bit 31 enable, bus 23:16, device 15:11, function
/// 10:8, register 7:0) and a data window at 0xcfc-0xcff taking byte, word or dword accesses; the
/// register is the address's bits 7:0 ORed with the offset in the window, so bits 1:0 written
/// to 0xcf8 count as QEMU's host bridge counts them (`target`). With the enable bit clear, or for any function nobody implements
/// (another bus included), the window reads all ones and ignores writes. Writes to the address
/// register other than a full dword at 0xcf8 are ignored, as QEMU does.
///
/// Devices plug in at 00:0N.0 (`register`); their BARs map into `ioSpace` and `memorySpace`
/// (on the pc machine: the "io" root and the "pci" memory container that system memory shows
/// below RAM, so a BAR moved over RAM is hidden by it). No I/O BAR maps over the
/// configuration ports (`configPorts`, a deliberate difference: see `PCIDevice`).
/// With no firmware to program BARs, `assignBARs` places them as SeaBIOS does, then enables
/// decoding. QEMU: i440FX-pcihost + pci_host (hw/pci/pci_host.c).
public final class PCIHost: Sendable {
    /// "pci-conf-idx", 4 ports at 0xcf8.
    public let addressRegion: MemoryRegion
    /// "pci-conf-data", 4 ports at 0xcfc.
    public let dataRegion: MemoryRegion
    /// Function 00:00.0, the host bridge itself.
    public let bridge: I440FXBridge
    /// The I/O container devices' I/O BARs map into.
    public let ioSpace: MemoryRegion
    /// The container devices' memory BARs map into (the machine's "pci").
    public let memorySpace: MemoryRegion

    /// CONFIG_ADDRESS. QEMU: pci_host_conf_le_ops on 0xcf8.
    public static let addressPort: UInt64 = 0xcf8
    /// CONFIG_DATA. QEMU: pci_host_data_le_ops on 0xcfc.
    public static let dataPort: UInt64 = 0xcfc
    /// The ports of configuration mechanism #1 (and the PIIX3 reset register at 0xcf9 among
    /// them), which no I/O BAR may take over.
    public static let configPorts: Range<UInt64> = 0xcf8..<0xd00

    private let configAddress = Mutex<UInt32>(0)
    /// Functions by devfn (slot << 3 | function); only function 0 is used.
    private let devices = Mutex<[Int: PCIDevice]>([:])

    /// - Parameters:
    ///   - ioSpace: the I/O port container I/O BARs map into.
    ///   - memorySpace: the container memory BARs map into (the machine's "pci" container).
    public init(ioSpace: MemoryRegion, memorySpace: MemoryRegion) {
        self.ioSpace = ioSpace
        self.memorySpace = memorySpace
        bridge = I440FXBridge()
        let owner = RegionOwner<PCIHost>()
        addressRegion = .io(name: "pci-conf-idx", size: 4, ops: owner.ops(read: PCIHost.readAddress, write: PCIHost.writeAddress))
        dataRegion = .io(name: "pci-conf-data", size: 4, ops: owner.ops(read: PCIHost.readData, write: PCIHost.writeData))
        owner.set(self)
        devices.withLock { $0[0] = bridge }
        bridge.attach(ioSpace: ioSpace, memorySpace: memorySpace, protectedIO: PCIHost.configPorts)
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
        device.attach(ioSpace: ioSpace, memorySpace: memorySpace, protectedIO: PCIHost.configPorts)
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

    /// The BAR number of the expansion ROM in assignments (the ROM BAR at config 0x30 gets an
    /// address with its enable bit clear, as SeaBIOS leaves it). QEMU: PCI_ROM_SLOT.
    public static let romSlot = 6

    /// Programs every BAR as SeaBIOS 1.16 does on QEMU's i440FX, then enables I/O, memory and
    /// SERR on every function. Returns where each BAR went.
    ///
    /// SeaBIOS's rules (`pci_bios_check_devices()`, `pci_bios_map_devices()`): BARs are put in
    /// three lists — I/O, memory, prefetchable memory — each sorted by alignment then size,
    /// largest first (ties in bus order); a memory BAR takes at least 4 KiB. The I/O list goes
    /// up from 0xc000 (from 0x1000 when it needs 16 KiB or more). The two memory lists sit at
    /// the top of the 32-bit window `[mmioBottom, mmioTop)`: prefetchable highest, unless memory's
    /// alignment is the smaller, then memory highest. 64-bit BARs stay in that window too — QEMU 7.2's SeaBIOS puts virtio-pci's
    /// 64-bit BAR 4 at 0xfebf8000, with 128 MiB or 5 GiB of RAM alike — unless it is full:
    /// then they move to a 64-bit window from `above4GEnd` (the end of RAM above 4 GiB) rounded
    /// up to 1 GiB. Where SeaBIOS panics (no room at all), the BARs stay unassigned and one
    /// error is logged.
    /// - Parameters:
    ///   - mmioTop: end of the 32-bit window (QEMU/SeaBIOS: the IOAPIC, 0xfec00000).
    ///   - mmioBottom: its start (SeaBIOS's `pcimem_start`).
    ///   - above4GEnd: where the 64-bit window may start (4 GiB + RAM above 4 GiB).
    /// QEMU: SeaBIOS `pci_setup()` (src/fw/pciinit.c).
    @discardableResult
    public func assignBARs(mmioTop: UInt64, mmioBottom: UInt64 = 0, above4GEnd: UInt64 = 1 << 32) -> [PCIBARAssignment] {
        let plugged = devices.withLock { d in d.sorted { $0.key < $1.key }.map { ($0.key >> 3, $0.value) } }
            .filter { $0.1 !== bridge }
        var io = BARList(), mem = BARList(), pref = BARList()
        for (slot, dev) in plugged {
            for (i, b) in dev.bars.enumerated() {
                guard let b else { continue }
                let entry = BARList.Entry(slot: slot, device: dev, bar: i, kind: b.kind, size: b.size,
                                          span: b.kind.isIO ? b.size : max(b.size, 0x1000))
                if b.kind.isIO { io.insert(entry) } else if b.kind.isPrefetchable { pref.insert(entry) } else { mem.insert(entry) }
            }
            // The ROM BAR last, as SeaBIOS sizes PCI_ROM_SLOT after the six: 32-bit memory.
            if let size = dev.romSize {
                mem.insert(BARList.Entry(slot: slot, device: dev, bar: Self.romSlot, kind: .memory32, size: size, span: max(size, 0x1000)))
            }
        }
        var placed: [(BARList.Entry, UInt64)] = []
        // I/O. QEMU: pci_bios_init_root_regions_io().
        if let sum = io.sum, sum < 0x9000 {
            placed += io.place(from: sum < 0x4000 ? 0xc000 : 0x1000)
        } else {
            devicesLogger.error("PCI: out of I/O address space; I/O BARs left unassigned")
        }
        // Memory below 4 GiB, 64-bit BARs above it if that does not fit.
        // QEMU: pci_bios_init_root_regions_mem(), pci_region_migrate_64bit_entries().
        if let bases = Self.topOfWindow(mem, pref, top: mmioTop, bottom: mmioBottom) {
            placed += mem.place(from: bases.mem) + pref.place(from: bases.pref)
        } else {
            let mem64 = mem.removing64Bit(), pref64 = pref.removing64Bit()
            if let bases = Self.topOfWindow(mem, pref, top: mmioTop, bottom: mmioBottom),
               let high = Self.window64(mem64, pref64, from: above4GEnd) {
                placed += mem64.place(from: high.mem) + pref64.place(from: high.pref)
                placed += mem.place(from: bases.mem) + pref.place(from: bases.pref)
            } else {
                devicesLogger.error("PCI: out of 32-bit address space; memory BARs left unassigned")
            }
        }
        // No enclosing transaction: each config write makes its own, so the memory system's
        // lock is never held while a device's lock is taken (devices take them the other way).
        var out: [PCIBARAssignment] = []
        for (e, address) in placed {
            let reg = e.bar == Self.romSlot ? PCIDevice.Register.romAddress : PCIDevice.Register.bar0 + 4 * e.bar
            e.device.configWrite(offset: reg, value: UInt32(truncatingIfNeeded: address), size: 4)
            if e.kind.is64Bit {
                e.device.configWrite(offset: reg + 4, value: UInt32(truncatingIfNeeded: address >> 32), size: 4)
            }
            out.append(PCIBARAssignment(slot: e.slot, bar: e.bar, kind: e.kind, address: address, size: e.size))
        }
        // As SeaBIOS's pci_bios_init_device: I/O, memory and SERR on for every function
        // (the write mask keeps what a function does not implement).
        for (_, dev) in plugged {
            let cmd = dev.command | PCIDevice.commandIO | PCIDevice.commandMemory | PCIDevice.commandSERR
            dev.configWrite(offset: PCIDevice.Register.command, value: UInt32(cmd), size: 2)
        }
        return out.sorted { ($0.slot, $0.bar) < ($1.slot, $1.bar) }
    }

    /// Bases for the 64-bit window: memory from `start` aligned to its alignment and to 1 GiB,
    /// prefetchable after it, aligned likewise; nil on overflow. QEMU: SeaBIOS
    /// pci_bios_map_devices() (no "etc/reserved-memory-end" without memory hotplug).
    static func window64(_ mem: BARList, _ pref: BARList, from start: UInt64) -> (mem: UInt64, pref: UInt64)? {
        let gib: UInt64 = 1 << 30
        guard let memSum = mem.sum, let prefSum = pref.sum,
              let memBase = BARList.alignUp(start, mem.alignment).flatMap({ BARList.alignUp($0, gib) }) else { return nil }
        let (prefStart, o1) = memBase.addingReportingOverflow(memSum)
        guard !o1, let prefBase = BARList.alignUp(prefStart, pref.alignment).flatMap({ BARList.alignUp($0, gib) }),
              !prefBase.addingReportingOverflow(prefSum).overflow else { return nil }
        return (memBase, prefBase)
    }

    /// Bases for the two memory lists at the top of `[bottom, top)`, each aligned down to its
    /// alignment: prefetchable highest and memory right below it, swapped when memory's
    /// alignment is the smaller (so the larger-aligned list starts on its own alignment); nil
    /// when they do not fit. QEMU: SeaBIOS pci_bios_init_root_regions_mem().
    static func topOfWindow(_ mem: BARList, _ pref: BARList, top: UInt64, bottom: UInt64) -> (mem: UInt64, pref: UInt64)? {
        let prefOnTop = !(mem.alignment < pref.alignment)
        let (high, low) = prefOnTop ? (pref, mem) : (mem, pref)
        guard let highSum = high.sum, let lowSum = low.sum else { return nil }
        let (a, o1) = top.subtractingReportingOverflow(highSum)
        guard !o1 else { return nil }
        let highBase = a & ~(high.alignment - 1)
        let (b, o2) = highBase.subtractingReportingOverflow(lowSum)
        guard !o2 else { return nil }
        let lowBase = b & ~(low.alignment - 1)
        guard lowBase >= bottom, lowBase <= top else { return nil }
        return prefOnTop ? (mem: lowBase, pref: highBase) : (mem: highBase, pref: lowBase)
    }

    // MARK: Mechanism #1

    /// CONFIG_ADDRESS back to 0.
    public func reset() { configAddress.withLock { $0 = 0 } }

    /// The current CONFIG_ADDRESS value.
    public var currentConfigAddress: UInt32 { configAddress.withLock { $0 } }

    /// CONFIG_ADDRESS as it was written, whatever byte of 0xcf8-0xcfb is read: the memory core
    /// keeps the low bytes of the value for a narrower access, so `inb 0xcfa` reads bits 7:0.
    /// QEMU: pci_host_config_read() (returns config_reg for any offset).
    func readAddress(_ offset: UInt64, _ size: Int) -> UInt64 {
        UInt64(configAddress.withLock { $0 })
    }

    /// Only a dword write at 0xcf8 sets CONFIG_ADDRESS, all 32 bits of it (bits 1:0 included).
    /// QEMU: pci_host_config_write().
    func writeAddress(_ offset: UInt64, _ value: UInt64, _ size: Int) {
        guard offset == 0, size == 4 else { return }
        configAddress.withLock { $0 = UInt32(truncatingIfNeeded: value) }
    }

    /// The addressed function, the register, and how many of the access's bytes fall inside
    /// its 256-byte configuration space; nil when disabled or nothing is there. The register is
    /// CONFIG_ADDRESS's bits 7:0 — bits 1:0 included — ORed with the data port offset, so
    /// 0x80001002 then a word read at 0xcfc reads the device ID. An access reaching past 0xff
    /// is cut at the end of the space (the bytes beyond read 0 and are not written).
    /// QEMU: pci_host_data_read/write() (config_reg | (addr & 3)) → pci_data_read/write()
    /// (addr & 0xff) → pci_host_config_read/write_common() (MIN(len, limit - addr)).
    func target(_ offset: UInt64, _ size: Int) -> (device: PCIDevice, register: Int, size: Int)? {
        let addr = configAddress.withLock { $0 }
        guard addr & 0x8000_0000 != 0, (addr >> 16) & 0xff == 0 else { return nil }
        let devfn = Int((addr >> 8) & 0xff)
        guard let dev = devices.withLock({ $0[devfn] }) else { return nil }
        let register = Int((addr | UInt32(truncatingIfNeeded: offset & 3)) & 0xff)
        return (dev, register, min(max(size, 0), 256 - register))
    }

    func readData(_ offset: UInt64, _ size: Int) -> UInt64 {
        guard let t = target(offset, size) else { return UInt64.max }
        return UInt64(t.device.configRead(offset: t.register, size: t.size))
    }

    func writeData(_ offset: UInt64, _ value: UInt64, _ size: Int) {
        guard let t = target(offset, size) else { return }
        t.device.configWrite(offset: t.register, value: UInt32(truncatingIfNeeded: value), size: t.size)
    }
}

/// One of SeaBIOS's BAR lists (I/O, memory or prefetchable memory of the root bus), kept
/// sorted as `pci_region_create_entry()` keeps it. QEMU: SeaBIOS `struct pci_region`.
struct BARList {
    struct Entry {
        let slot: Int
        let device: PCIDevice
        let bar: Int
        let kind: PCIDevice.BARKind
        /// The BAR's size.
        let size: UInt64
        /// What it takes in the window (and its alignment): memory BARs at least 4 KiB.
        let span: UInt64
    }

    private(set) var entries: [Entry] = []

    /// Inserts before the first entry with a smaller alignment, or the same alignment and a
    /// smaller size, so equal entries stay in bus order.
    mutating func insert(_ e: Entry) {
        let at = entries.firstIndex { $0.span < e.span } ?? entries.count
        entries.insert(e, at: at)
    }

    /// The largest alignment in the list (1 when empty). QEMU: pci_region_align().
    var alignment: UInt64 { entries.first?.span ?? 1 }

    /// Total span, or nil if it would overflow. QEMU: pci_region_sum().
    var sum: UInt64? {
        var total: UInt64 = 0
        for e in entries {
            let (t, o) = total.addingReportingOverflow(e.span)
            guard !o else { return nil }
            total = t
        }
        return total
    }

    /// Takes the 64-bit entries out, in order. QEMU: pci_region_migrate_64bit_entries().
    @discardableResult
    mutating func removing64Bit() -> BARList {
        var out = BARList()
        out.entries = entries.filter { $0.kind.is64Bit }
        entries.removeAll { $0.kind.is64Bit }
        return out
    }

    /// Addresses for every entry, one after another from `base` (the caller checked the sum
    /// fits). QEMU: pci_region_map_entries().
    func place(from base: UInt64) -> [(Entry, UInt64)] {
        var at = base
        return entries.map { e in
            defer { at &+= e.span }
            return (e, at)
        }
    }

    /// `value` rounded up to `alignment` (a power of two), or nil on overflow.
    static func alignUp(_ value: UInt64, _ alignment: UInt64) -> UInt64? {
        let (v, o) = value.addingReportingOverflow(alignment - 1)
        return o ? nil : v & ~(alignment - 1)
    }
}
