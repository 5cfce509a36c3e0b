import Devices
import Logging
import Memory
import VirtIO
import VMMSys

/// What a device type may use while it realizes itself on the pc machine: the address spaces
/// its regions map into, interrupt lines, the PCI bus, the I/O thread and MSI delivery, the
/// configuration's backends, and the machine's exit. QEMU: what a DeviceState's realize()
/// reaches through its parent bus and the machine.
public final class DeviceContext {
    /// The whole configuration: backends (`-drive`, `-chardev`, `-netdev`, `-object`) a device
    /// links to.
    public let configuration: MachineConfiguration
    /// The "io" root: ISA devices' ports.
    public let io: MemoryRegion
    /// PCI memory ("pci"): ISA memory and BARs.
    public let pciMemory: MemoryRegion
    /// Device DMA: reads guest RAM, never writes ROM.
    public let dma: GuestMemory
    /// Serves virtio queues.
    public let ioThread: IOThread
    /// Where MSI-X messages go (KVM irqfds).
    public let msi: any MSIController
    /// KVM takes zero-length ("fast MMIO") ioeventfds.
    public let fastMMIO: Bool
    /// The machine's logger, for a device's own lines.
    public let logger: Logger
    let pci: PCIBus
    let isaIRQ: @Sendable (UInt32) -> IRQ
    let exit: @Sendable (Int32, String) -> Void
    /// The backend for serial port 0 when the caller supplies one (tests capture output).
    let serialOverride: (any SerialBackend)?
    /// ISA serial indexes already taken.
    var serialIndexes = Set<Int>()
    /// Chardevs opened so far, by id (each opened once, on first use).
    var chardevs: [String: Chardev] = [:]
    /// Tap backends opened so far, by netdev id.
    var netBackends: [String: any NetBackend] = [:]
    /// QEMU's default-MAC slots taken (52:54:00:12:34:56 + n).
    var usedMACSlots = Set<UInt8>()
    /// virtio-serial devices realized so far: the buses virtconsole/virtserialport plug into.
    var virtioSerialBuses: [VirtIOSerial] = []

    init(configuration: MachineConfiguration, io: MemoryRegion, pciMemory: MemoryRegion, dma: GuestMemory,
         ioThread: IOThread, msi: any MSIController, fastMMIO: Bool, logger: Logger, pci: PCIBus,
         isaIRQ: @escaping @Sendable (UInt32) -> IRQ, exit: @escaping @Sendable (Int32, String) -> Void,
         serialOverride: (any SerialBackend)?) {
        self.configuration = configuration
        self.io = io
        self.pciMemory = pciMemory
        self.dma = dma
        self.ioThread = ioThread
        self.msi = msi
        self.fastMMIO = fastMMIO
        self.logger = logger
        self.pci = pci
        self.isaIRQ = isaIRQ
        self.exit = exit
        self.serialOverride = serialOverride
    }

    /// ISA IRQ / GSI `n` of the in-kernel irqchip.
    public func irq(_ n: UInt32) -> IRQ { isaIRQ(n) }

    /// Ends the run with `status` (isa-debug-exit, power-off). QEMU: qemu_system_shutdown_request().
    public func requestExit(_ status: Int32, reason: String) { exit(status, reason) }

    /// Plugs a PCI function built by `make`, which gets its INTx line (pin A, routed as SeaBIOS
    /// routes it) before it exists; at `instance`'s `addr=` or the first free slot.
    public func plugPCI<D: PCIDevice>(_ instance: DeviceInstance, _ make: (_ intx: IRQ) throws -> D) throws -> D {
        let address = try pci.slot(for: instance.pciAddress, driver: instance.driver)
        let device = try make(pci.intx(slot: address.slot, function: address.function))
        if let rom = try PCIOptionROM.region(for: instance, dataDirectories: configuration.dataDirectories) {
            device.registerROM(rom)
        }
        try pci.plug(device, at: address)
        return device
    }

    /// The backend for a serial port on `chardev` (the caller's override for port 0 if given).
    /// A stdio port is remembered: its input comes from standard input (read by vmm's runner).
    func serialBackend(chardev id: String?, index: Int) throws(MachineError) -> any SerialBackend {
        if index == 0, let serialOverride { return serialOverride }
        guard let id, let spec = configuration.chardevs.first(where: { $0.id == id }) else { return NullSerialBackend() }
        switch spec.backend {
        case .stdio: return StdoutSerialBackend()
        case .null: return NullSerialBackend()
        case .file(let path):
            do { return try FileSerialBackend(path: path) } catch { throw MachineError("-chardev \(id): \(path): \(error)") }
        case .appendFile, .pipe, .pty, .socket:
            return try chardev(id)
        }
    }

    /// Feeds a serial port the input of its chardev (sockets, pipes, ptys; stdio input is
    /// read by vmm's runner). QEMU: qemu_chr_fe_set_handlers() in serial_realize().
    public func connectSerialInput(_ port: SerialPort, chardev id: String?) throws(MachineError) {
        guard let id, let chardev = chardevs[id] else { return }
        do { try chardev.attach(SerialPortFrontend(port), ioThread: ioThread, retain: true) } catch {
            throw MachineError("-chardev \(id): \(error)")
        }
    }

    /// Chardev `id`, opened on first use (standard input is left to vmm's runner).
    public func chardev(_ id: String) throws(MachineError) -> Chardev {
        if let c = chardevs[id] { return c }
        guard let spec = configuration.chardevs.first(where: { $0.id == id }) else { throw MachineError("chardev '\(id)' not found") }
        let c = try spec.open(readsStdin: false, logger: logger)
        chardevs[id] = c
        return c
    }

    /// The frame backend of netdev `id`: the tap opened (created, as root, if missing) with
    /// the queues asked for, or the descriptors handed over. QEMU: net_init_tap().
    public func netBackend(_ id: String) throws(MachineError) -> any NetBackend {
        if let b = netBackends[id] { return b }
        guard let spec = configuration.netdevs.first(where: { $0.id == id }) else { throw MachineError("netdev '\(id)' not found") }
        let tap: TapDevice
        do {
            tap = spec.fds.isEmpty ? try TapDevice.open(name: spec.ifname ?? "", queues: spec.queues, vnetHeader: spec.vnetHeader)
                : try TapDevice.adopt(spec.fds, vnetHeader: spec.vnetHeader)
        } catch {
            throw MachineError("-netdev tap,id=\(id): \(error)")
        }
        let backend = TapNetBackend(tap)
        netBackends[id] = backend
        return backend
    }

    /// The NIC's MAC: `text` if given, else QEMU's next free default (52:54:00:12:34:56,
    /// :57, ...). A given address in that range takes its slot. QEMU: qemu_macaddr_default_if_unset().
    public func macAddress(_ text: String?) -> MACAddress { Self.allocateMAC(text, used: &usedMACSlots) }

    static func allocateMAC(_ text: String?, used: inout Set<UInt8>) -> MACAddress {
        if let text, let mac = MACAddress(parsing: text) {
            if mac.isQEMUDefaultRange { used.insert(mac.bytes.5 &- 0x56) }
            return mac
        }
        let slot = (0...255).lazy.map { UInt8($0) }.first { !used.contains($0) } ?? 0
        used.insert(slot)
        return .qemuDefault(index: slot)
    }

    /// The drive a `drive=` property names (checked when the configuration was built).
    public func drive(_ id: String) throws(MachineError) -> DriveSpec {
        guard let d = configuration.drives.first(where: { $0.id == id }) else { throw MachineError("drive '\(id)' not found") }
        return d
    }
}
