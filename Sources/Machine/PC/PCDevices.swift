import Devices
import Logging
import VirtIO
import KVMAccel
import Memory
import VMMSys

/// The devices of the pc machine, created from the configuration and mapped into the
/// machine's roots through the memory API. Interrupts go to the in-kernel irqchip.
/// QEMU: the device creation in `pc_init1()` plus `-device`.
public final class PCDevices: Sendable {
    public let serial: SerialPort?
    public let debugExit: ISADebugExit?
    public let fwCfg: FwCfg
    public let fwCfgDMA: FwCfgDMA
    public let cmos: CMOS
    public let pmTimer: ACPIPMTimer
    public let pmRegisters: ACPIPMRegisters
    public let resetControl: ResetControl
    public let keyboardController: I8042
    public let pcTestDev: PCTestDev?
    public let pci: PCIBus
    /// Serves the virtio queues (started with the machine).
    public let ioThread: IOThread

    /// - Parameters:
    ///   - pciMemory: PCI memory space (BARs, pc-testdev's iomem), as QEMU's "pci" container.
    ///   - dma: the devices' access to guest memory; it must not write ROM (`AddressSpace.dmaMemory`).
    init(configuration c: MachineConfiguration, layout: PCMemoryLayout, pciMemory: MemoryRegion, ioRoot: MemoryRegion,
         dma: GuestMemory, accelerator: KVMAccelerator, serial serialOverride: (any SerialBackend)?, logger: Logger,
         requestExit: @escaping @Sendable (Int32, String) -> Void) throws {
        func isaIRQ(_ n: UInt32) -> IRQ { IRQ { level in accelerator.setIRQLine(n, level: level) } }

        // COM1 exists only with a serial backend (QEMU: -nodefaults and no -serial → none).
        let backend: (any SerialBackend)?
        if let serialOverride {
            backend = serialOverride
        } else {
            switch c.serial {
            case .stdio: backend = StdoutSerialBackend()
            case .file(let path):
                do { backend = try FileSerialBackend(path: path) } catch {
                    throw MachineError("-serial file:\(path): \(error)")
                }
            case .none: backend = nil
            }
        }
        if let backend {
            let port = SerialPort(backend: backend, irq: isaIRQ(4), name: "serial")
            ioRoot.addSubregion(port.region, at: 0x3f8)
            serial = port
        } else {
            serial = nil
        }

        var debugExit: ISADebugExit?
        var pcTestDev: PCTestDev?
        var wantPCITestDev = false
        var virtio: [any VirtIODevice] = []
        for d in c.devices {
            switch d {
            case .isaDebugExit(let iobase, let iosize):
                let dev = ISADebugExit(iobase: iobase, iosize: iosize, onExit: { requestExit($0, "isa-debug-exit") })
                dev.map(into: ioRoot)
                debugExit = dev
            case .pcTestdev:
                let dev = PCTestDev(irqLines: (0..<24).map { isaIRQ(UInt32($0)) })
                dev.map(into: ioRoot, memory: pciMemory)          // QEMU: in the ISA (= PCI) memory space
                pcTestDev = dev
            case .pciTestdev:
                wantPCITestDev = true
            case .virtioRNGPCI:
                virtio.append(VirtIORNG())
            case .virtioBlockPCI(let id, let serial):
                guard let drive = c.drives.first(where: { $0.id == id }) else {
                    throw MachineError("-device virtio-blk-pci: drive '\(id)' not found")
                }
                do {
                    virtio.append(try VirtIOBlock(path: drive.file, readOnly: drive.readOnly, serial: serial, logger: logger))
                } catch {
                    throw MachineError("-drive file=\(drive.file): \(error)")
                }
            }
        }
        self.debugExit = debugExit
        self.pcTestDev = pcTestDev

        fwCfg = FwCfg(ramSize: c.memorySize, cpus: UInt16(c.cpuCount), maxCPUs: UInt16(max(c.maxCPUs, c.cpuCount)))
        fwCfg.map(into: ioRoot)
        fwCfgDMA = FwCfgDMA(fwCfg: fwCfg, memory: dma)
        fwCfgDMA.map(into: ioRoot)
        cmos = CMOS(belowFourGiB: layout.below4G, aboveFourGiB: layout.above4G, cpus: c.cpuCount)
        cmos.map(into: ioRoot)
        pmTimer = ACPIPMTimer()
        pmTimer.map(into: ioRoot)
        // ACPI soft-off and the reset paths end the run as QEMU does with -no-reboot (status 0);
        // without firmware to restart there is nothing to reboot into.
        pmRegisters = ACPIPMRegisters(powerOff: { requestExit(0, "ACPI soft-off (PM1a_CNT SLP_EN, S5)") })
        pmRegisters.map(into: ioRoot)
        resetControl = ResetControl(reset: { requestExit(0, "reset through 0xcf9") })
        resetControl.map(into: ioRoot)
        keyboardController = I8042(reset: { requestExit(0, "reset through the i8042 (0xfe to 0x64)") })
        keyboardController.map(into: ioRoot)
        let thread = try IOThread(logger: logger)
        ioThread = thread
        let msi = KVMMSIController(accelerator: accelerator, logger: logger)
        let virtioDevices = try virtio.map { d in
            // INTx (while MSI-X is off) on GSI 11, as SeaBIOS routes the first PCI slots' pin A.
            try VirtIOPCI(device: d, dma: dma, msiController: msi, intx: isaIRQ(11), ioThread: thread,
                          fastMMIO: accelerator.anyLengthIoeventfds, logger: logger)
        }
        pci = try PCIBus(pciMemory: pciMemory, ioRoot: ioRoot, layout: layout, accelerator: accelerator,
                         pciTestDev: wantPCITestDev, extraDevices: virtioDevices)
    }
}
