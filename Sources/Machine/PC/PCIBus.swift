import Devices
import KVMAccel
import Logging
import Memory
import Synchronization

/// The pc machine's PCI bus 0: the i440FX host bridge on 0xcf8/0xcfc, the PIIX3 functions at
/// 00:01, the devices from the command line (plugged in command-line order, each at its
/// `addr=` or the first free slot), INTx routed as SeaBIOS routes it, and BARs assigned as
/// SeaBIOS assigns them (MMIO at the top of the 32-bit window below the IOAPIC, I/O up from
/// 0xc000) with decoding enabled, since no firmware runs. Memory BARs map into the machine's
/// "pci" container, I/O BARs into the "io" root. QEMU: `i440fx_init()` + SeaBIOS `pci_setup()`.
public final class PCIBus: Sendable {
    /// The i440FX host bridge: config space access on 0xcf8/0xcfc. QEMU: i440fx_pcihost_realize().
    public let host: PCIHost
    private let assigned = Mutex<[PCIBARAssignment]>([])
    private let layout: PCMemoryLayout
    /// Which devices assert each PCI interrupt line (PIRQ A–D), so a shared line is the OR of
    /// its devices' levels. QEMU: piix3_set_irq_level() with pic_levels.
    private let pirqLevels = Mutex<[Set<Int>]>([[], [], [], []])
    private let setGSI: @Sendable (UInt32, Bool) -> Void

    /// The ISA IRQs SeaBIOS routes PIRQ A–D to on i440FX (PIIX3 registers 0x60–0x63).
    /// SeaBIOS: pci_irqs[] in piix_isa_bridge_setup().
    public static let pirqIRQs: [UInt32] = [10, 10, 11, 11]

    /// Whether firmware programs the bus (no BAR assignment or interrupt lines here, and PIRQ
    /// routing follows the PIIX3's registers).
    let firmware: Bool
    /// The PIIX3 PCI-to-ISA bridge (00:01.0), whose PIRQRC registers route PIRQ A-D.
    let isaBridge: PCIDevice

    /// - Parameter powerManagement: the function at 00:01.3 (PIIX4 PM); nil for the identity-only one.
    init(pciMemory: MemoryRegion, ioRoot: MemoryRegion, layout: PCMemoryLayout, firmware: Bool = false,
         powerManagement: PCIDevice? = nil, setGSI: @escaping @Sendable (UInt32, Bool) -> Void) throws {
        self.layout = layout
        self.setGSI = setGSI
        self.firmware = firmware
        host = PCIHost(ioSpace: ioRoot, memorySpace: pciMemory)
        host.map(into: ioRoot)
        // The PIIX3 at 00:01 as on QEMU's pc, so the first -device lands at 00:02.0 as there.
        isaBridge = PIIX3.isaBridge()
        if firmware { PIIX3.resetRouting(isaBridge) }
        _ = try host.register(isaBridge, slot: 1, function: 0)
        _ = try host.register(PIIX3.ide(), slot: 1, function: 1)
        _ = try host.register(powerManagement ?? PIIX3.powerManagement(), slot: 1, function: 3)
    }

    /// Every function's header back to its reset values (firmware programs them again); the
    /// PIIX3's routing and the PIIX4 PM's registers too. QEMU: pci_do_device_reset() on each,
    /// piix3_reset(), piix4_pm_reset().
    func resetFunctions() {
        for (_, _, device) in host.functions {
            device.resetHeader()
            (device as? PIIX4PowerManagement)?.reset()
        }
        PIIX3.resetRouting(isaBridge)
    }

    /// The ISA IRQ PIRQ `pirq` (0-3) is routed to: with firmware, the PIIX3's PIRQRC register
    /// (bit 7 disables the route; IRQs 0-2, 8 and 13 are not routable), as QEMU's
    /// piix3_set_irq_pic() reads it; without, where SeaBIOS routes it.
    func route(_ pirq: Int) -> UInt32? {
        guard firmware else { return Self.pirqIRQs[pirq] }
        let value = isaBridge.configBytes(at: PIIX3.pirqRouteRegister + pirq, count: 1)[0]
        return PIIX3.routedIRQ(value)
    }

    /// The slot a device will get: `address`'s, or the first free one from 1.
    /// QEMU: do_pci_register_device() devfn choice; its error for a taken slot.
    func slot(for address: (slot: Int, function: Int)?, driver: String) throws(MachineError) -> (slot: Int, function: Int) {
        if let address {
            if let other = host.functions.first(where: { $0.slot == address.slot && $0.function == address.function }) {
                _ = other
                throw MachineError("-device \(driver): PCI: slot \(address.slot) function \(address.function) not available for \(driver)")
            }
            return address
        }
        guard let free = (1..<32).first(where: { s in !host.functions.contains { $0.slot == s } }) else {
            throw MachineError("-device \(driver): PCI: no slot/function available for \(driver), all in use")
        }
        return (free, 0)
    }

    /// The INTx line of pin A of a device at `slot`: PIRQ (slot - 1) & 3, shared by OR-ing.
    /// SeaBIOS: piix_pci_slot_get_irq(); QEMU: pci_slot_get_pirq().
    func intx(slot: Int, function: Int) -> IRQ {
        let pirq = (slot &- 1) & 3
        let source = slot << 3 | function
        return IRQ { [self] level in
            let line = pirqLevels.withLock { levels -> Bool in
                if level { levels[pirq].insert(source) } else { levels[pirq].remove(source) }
                return !levels[pirq].isEmpty
            }
            if let irq = route(pirq) { setGSI(irq, line) }
        }
    }

    /// Plugs `device` at `address` and, without firmware, programs its interrupt line register
    /// as SeaBIOS would.
    func plug(_ device: PCIDevice, at address: (slot: Int, function: Int)) throws {
        _ = try host.register(device, slot: address.slot, function: address.function)
        if !firmware, device.configRead(offset: PCIDevice.Register.interruptPin, size: 1) != 0 {
            let irq = Self.pirqIRQs[(address.slot &- 1) & 3]
            device.configWrite(offset: PCIDevice.Register.interruptLine, value: irq, size: 1)
        }
    }

    /// Programs every BAR as SeaBIOS would (once every device is plugged).
    func assignBARs() {
        let a = host.assignBARs(mmioTop: PCMemoryLayout.ioapicBase, mmioBottom: Self.mmioWindowStart(layout),
                                above4GEnd: PCMemoryLayout.highMemoryBase + layout.above4G)
        assigned.withLock { $0 = a }
    }

    /// Where each BAR went.
    public var assignments: [PCIBARAssignment] { assigned.withLock { $0 } }

    /// Where SeaBIOS lets the 32-bit PCI window start on i440FX: 2 GiB or 3 GiB when RAM below
    /// 4 GiB ends below those, else the end of that RAM. QEMU: SeaBIOS i440fx_mem_addr_setup().
    static func mmioWindowStart(_ layout: PCMemoryLayout) -> UInt64 {
        if layout.below4G <= 0x8000_0000 { return 0x8000_0000 }
        if layout.below4G <= 0xc000_0000 { return 0xc000_0000 }
        return layout.below4G
    }

    /// The class names QEMU knows for the classes this bus holds. QEMU: pci_class_descriptions.
    public static let classNames: [UInt32: String] = [0x0600: "Host bridge", 0x0601: "ISA bridge", 0x0101: "IDE controller",
                                                      0x0680: "Bridge", 0x0100: "SCSI controller", 0x0200: "Ethernet controller",
                                                      0x0780: "Communication controller"]

    /// `info pci` in QEMU's shape: each function's class, ids, BARs and interrupt pin.
    /// QEMU: hmp_info_pci().
    public func info() -> String {
        let classNames = Self.classNames
        var out = ""
        for (slot, function, d) in host.functions {
            let ids = d.configRead(offset: 0, size: 4), sub = d.configRead(offset: 0x2c, size: 4)
            let cls = d.configRead(offset: 0x0a, size: 2)
            func hex(_ v: UInt32, _ w: Int) -> String {
                let s = String(v, radix: 16)
                return String(repeating: "0", count: max(0, w - s.count)) + s
            }
            // QEMU prints an unnamed class in decimal ("Class 0255" for 0x00ff).
            let decimal = String(cls)
            let name = classNames[cls] ?? "Class \(String(repeating: "0", count: max(0, 4 - decimal.count)))\(decimal)"
            out += "  Bus  0, device \(String(repeating: " ", count: slot < 10 ? 2 : 1))\(slot), function \(function):\n"
            out += "    \(name): PCI device \(hex(ids & 0xffff, 4)):\(hex(ids >> 16, 4))\n"
            out += "      PCI subsystem \(hex(sub & 0xffff, 4)):\(hex(sub >> 16, 4))\n"
            let pin = d.configRead(offset: 0x3d, size: 1)
            if pin != 0 {
                out += "      IRQ \(d.configRead(offset: 0x3c, size: 1)), pin \(Character(UnicodeScalar(UInt8(64 + min(pin, 4)))))\n"
            }
            for (i, bar) in d.bars.enumerated() {
                guard let bar else { continue }
                out += "      BAR\(i): \(Self.describe(bar.kind, at: d.barAddress(i), size: bar.size)).\n"
            }
            out += "      id \"\"\n"
        }
        return out
    }

    /// One BAR as QEMU's `info pci` prints it: "I/O at 0x%04x [0x%04x]" or "%d bit[
    /// prefetchable] memory at 0x%08x [0x%08x]"; an unmapped BAR shows QEMU's
    /// PCI_BAR_UNMAPPED (all ones) and the end that wraps to. QEMU: hmp_info_pci().
    static func describe(_ kind: PCIDevice.BARKind, at address: UInt64?, size: UInt64) -> String {
        let start = address ?? UInt64.max
        let last = start &+ size &- 1
        func hex(_ v: UInt64, _ width: Int) -> String {
            let s = String(v, radix: 16)
            return "0x" + String(repeating: "0", count: max(0, width - s.count)) + s
        }
        if kind.isIO { return "I/O at \(hex(start, 4)) [\(hex(last, 4))]" }
        return "\(kind.is64Bit ? 64 : 32) bit\(kind.isPrefetchable ? " prefetchable" : "") memory at \(hex(start, 8)) [\(hex(last, 8))]"
    }
}

