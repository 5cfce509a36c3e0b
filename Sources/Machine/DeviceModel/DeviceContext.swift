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
    public let logger: Logger
    let pci: PCIBus
    let isaIRQ: @Sendable (UInt32) -> IRQ
    let exit: @Sendable (Int32, String) -> Void
    /// The backend for serial port 0 when the caller supplies one (tests capture output).
    let serialOverride: (any SerialBackend)?
    /// ISA serial indexes already taken.
    var serialIndexes = Set<Int>()

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
    /// A stdio port is remembered: its input comes from standard input.
    func serialBackend(chardev id: String?, index: Int) throws(MachineError) -> any SerialBackend {
        if index == 0, let serialOverride { return serialOverride }
        guard let id, let spec = configuration.chardevs.first(where: { $0.id == id }) else { return NullSerialBackend() }
        switch spec.backend {
        case .stdio: return StdoutSerialBackend()
        case .null: return NullSerialBackend()
        case .file(let path):
            do { return try FileSerialBackend(path: path) } catch { throw MachineError("-chardev \(id): \(path): \(error)") }
        }
    }

    /// The drive a `drive=` property names (checked when the configuration was built).
    public func drive(_ id: String) throws(MachineError) -> DriveSpec {
        guard let d = configuration.drives.first(where: { $0.id == id }) else { throw MachineError("drive '\(id)' not found") }
        return d
    }
}
