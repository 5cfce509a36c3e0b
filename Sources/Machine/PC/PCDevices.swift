import Devices
import Logging
import VirtIO
import KVMAccel
import Memory
import VMMSys

/// The devices of the pc machine: the built-in ones (fw_cfg, RTC/CMOS, ACPI PM, reset, i8042,
/// the PCI host and PIIX3) and every configured device, realized from the device registry in
/// configuration order, all mapped into the machine's roots through the memory API.
/// Interrupts go to the in-kernel irqchip. QEMU: the device creation in `pc_init1()` plus
/// `-device` (qdev_device_add).
public final class PCDevices: Sendable {
    /// The fw_cfg interface on I/O ports 0x510/0x511. QEMU: fw_cfg_init_io_dma().
    public let fwCfg: FwCfg
    /// fw_cfg's DMA interface on I/O port 0x514. QEMU: fw_cfg_dma_transfer().
    public let fwCfgDMA: FwCfgDMA
    /// The RTC/CMOS at 0x70/0x71. QEMU: mc146818_rtc_init() + pc_cmos_init().
    public let cmos: CMOS
    /// The ACPI PM timer. QEMU: acpi_pm_tmr_init().
    public let pmTimer: ACPIPMTimer
    /// The PIIX4 PM event and control registers (SCI, sleep, power button). QEMU: piix4_pm_realize().
    public let pmRegisters: ACPIPMRegisters
    /// The reset control register at 0xcf9. QEMU: rcr_write().
    public let resetControl: ResetControl
    /// The i8042 keyboard controller at 0x60/0x64 (its output port resets the machine). QEMU: i8042_realizefn().
    public let keyboardController: I8042
    /// PCI bus 0 with the i440FX host and PIIX3. QEMU: i440fx_init().
    public let pci: PCIBus
    /// Whether firmware runs: it programs the PCI functions, ELCR and PM base itself.
    public let firmware: Bool
    /// Serves the virtio queues (started with the machine).
    public let ioThread: IOThread
    /// Every configured device, in configuration order, with what it realized as.
    public let realized: [(instance: DeviceInstance, device: AnyObject & Sendable)]

    /// - Parameters:
    ///   - pciMemory: PCI memory space (BARs, pc-testdev's iomem), as QEMU's "pci" container.
    ///   - dma: the devices' access to guest memory; it must not write ROM (`AddressSpace.dmaMemory`).
    ///   - serial: a backend for serial port 0 instead of its configured chardev (tests).
    /// What the devices ask of the machine.
    struct Hooks: Sendable {
        /// End the run with a status (isa-debug-exit).
        var exit: @Sendable (Int32, String) -> Void
        /// The guest entered a sleep state through PM1a_CNT (S5, S3, S4).
        var sleep: @Sendable (ACPIPMRegisters.SleepState) -> Void
        /// The RTC alarm fired with AIE set (a wake-up source while suspended).
        var alarm: @Sendable () -> Void
        /// The guest asked for a reset (0xcf9, the i8042).
        var reset: @Sendable () -> Void
    }

    init(configuration c: MachineConfiguration, layout: PCMemoryLayout, pciMemory: MemoryRegion, ioRoot: MemoryRegion,
         dma: GuestMemory, accelerator: KVMAccelerator, serial serialOverride: (any SerialBackend)?, logger: Logger,
         hooks: Hooks) throws {
        firmware = c.runsFirmware
        let isaIRQ: @Sendable (UInt32) -> IRQ = { n in IRQ { level in accelerator.setIRQLine(n, level: level) } }

        fwCfg = FwCfg(ramSize: c.memorySize, cpus: UInt16(c.cpuCount), maxCPUs: UInt16(max(c.maxCPUs, c.cpuCount)))
        // FW_CFG_NOGRAPHIC as QEMU sets it: 1 only with -nographic. QEMU: fw_cfg_common_realize().
        fwCfg.setInteger(FwCfg.Key.noGraphic, UInt16(c.noGraphic ? 1 : 0))
        fwCfg.map(into: ioRoot)
        fwCfgDMA = FwCfgDMA(fwCfg: fwCfg, memory: dma)
        fwCfgDMA.map(into: ioRoot)
        cmos = CMOS(belowFourGiB: layout.below4G, aboveFourGiB: layout.above4G, cpus: c.cpuCount, irq: isaIRQ(8),
                    alarmWake: hooks.alarm)
        PCFirmware.setBootRegisters(cmos, boot: c.boot)
        cmos.map(into: ioRoot)
        let timer = ACPIPMTimer()
        pmTimer = timer
        if !firmware { pmTimer.map(into: ioRoot) }
        // The SCI is ISA IRQ 9, level-triggered (the FADT's SCI_INT, the MADT's override).
        pmRegisters = ACPIPMRegisters(sci: isaIRQ(9), timerTicks: { timer.ticks }, sleep: hooks.sleep)
        // With firmware the PM block appears where firmware puts it (PIIX4 PM's PMBA); without,
        // where SeaBIOS would have put it.
        var powerManagement: PCIDevice?
        if firmware {
            powerManagement = PIIX4PowerManagement(blocks: [(pmRegisters.eventRegion, 0), (pmRegisters.controlRegion, 4), (timer.region, 8)],
                                                   io: ioRoot)
            for (region, port) in PIIX3.ideLegacyPorts() { ioRoot.addSubregion(region, at: port) }
        } else {
            pmRegisters.map(into: ioRoot)
        }
        resetControl = ResetControl(reset: hooks.reset)
        resetControl.map(into: ioRoot)
        keyboardController = I8042(firmware: firmware, keyboardIRQ: isaIRQ(1), mouseIRQ: isaIRQ(12), reset: hooks.reset)
        keyboardController.map(into: ioRoot)
        let thread = try IOThread(logger: logger)
        ioThread = thread
        pci = try PCIBus(pciMemory: pciMemory, ioRoot: ioRoot, layout: layout, firmware: firmware,
                         powerManagement: powerManagement,
                         setGSI: { gsi, level in accelerator.setIRQLine(gsi, level: level) })

        let context = DeviceContext(
            configuration: c, io: ioRoot, pciMemory: pciMemory, dma: dma, ioThread: thread,
            msi: KVMMSIController(accelerator: accelerator, logger: logger), fastMMIO: accelerator.anyLengthIoeventfds,
            logger: logger, pci: pci, isaIRQ: isaIRQ, exit: hooks.exit, serialOverride: serialOverride)
        var realized: [(DeviceInstance, AnyObject & Sendable)] = []
        for instance in c.devices {
            guard let type = DeviceRegistry.type(named: instance.driver) else {
                throw MachineError("-device \(instance.driver): not a known device")
            }
            realized.append((instance, try type.realize(instance, context)))
        }
        self.realized = realized
        if !firmware { pci.assignBARs() }
    }

    /// A system reset of every device; then, without firmware, the PCI BARs and command
    /// registers programmed again as firmware would after a reset; with firmware — or when the
    /// machine wakes from S3, where SeaBIOS's resume path leaves them for the OS — every PCI
    /// function's header back to its reset values.
    /// QEMU: qemu_devices_reset() → pci_do_device_reset() (+ SeaBIOS pci_setup without firmware).
    func reset(wakeup: Bool = false) {
        for d in [fwCfg, pmRegisters, cmos, keyboardController] as [any Resettable] { d.reset() }
        pci.host.reset()
        for (_, device) in realized { (device as? any Resettable)?.reset() }
        if firmware || wakeup { pci.resetFunctions() } else { pci.assignBARs() }
    }

    /// The firmware paths of the devices given a boot index, lowest index first, for fw_cfg
    /// "bootorder": "/pci@i0cf8/" + the function's class name ("scsi" for a block device,
    /// else "pciVVVV,DDDD") + "@slot[,function]" + the device's suffix ("/disk@0,0").
    /// QEMU: get_boot_devices_list() → qdev_get_fw_dev_path() (sysbus "pci@i0cf8",
    /// pcibus_get_fw_dev_path(), pci_dev_fw_name()), virtio-blk's add_boot_device_path().
    func bootOrder() -> [(index: Int64, path: String)] {
        var entries: [(index: Int64, path: String)] = []
        for (instance, object) in realized {
            guard case .signed(let index) = instance["bootindex"], index >= 0, let device = object as? PCIDevice,
                  let place = pci.host.functions.first(where: { $0.device === device }) else { continue }
            let ids = device.configRead(offset: 0, size: 4), cls = device.configRead(offset: PCIDevice.Register.classDevice, size: 2)
            func hex(_ v: UInt32, _ w: Int) -> String {
                let t = String(v, radix: 16)
                return String(repeating: "0", count: max(0, w - t.count)) + t
            }
            let name = Self.firmwareClassNames[cls] ?? "pci\(hex(ids & 0xffff, 4)),\(hex(ids >> 16, 4))"
            let at = String(place.slot, radix: 16) + (place.function != 0 ? "," + String(place.function, radix: 16) : "")
            let suffix = instance.driver == "virtio-blk-pci" ? "/disk@0,0" : ""
            entries.append((index, "/pci@i0cf8/\(name)@\(at)\(suffix)"))
        }
        return entries
    }

    /// Open Firmware names of PCI classes. QEMU: pci_class_descriptions[].fw_name.
    static let firmwareClassNames: [UInt32: String] = [0x0100: "scsi", 0x0101: "ide", 0x0200: "ethernet",
                                                        0x0300: "display", 0x0600: "host", 0x0601: "isa"]

    /// The first realized device of type `T`.
    public func first<T>(_: T.Type) -> T? { realized.lazy.compactMap { $0.device as? T }.first }

    /// Serial port 0 (COM1), if there is one.
    public var serial: SerialPort? {
        realized.first { $0.instance.driver == "isa-serial" && $0.instance.unsigned("index") == 0 }?.device as? SerialPort
            ?? first(SerialPort.self)
    }

    /// The serial port whose chardev is `id`.
    public func serial(chardev id: String) -> SerialPort? {
        realized.first { $0.instance.driver == "isa-serial" && $0.instance.string("chardev") == id }?.device as? SerialPort
    }
}
