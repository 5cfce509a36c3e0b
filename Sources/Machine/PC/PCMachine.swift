import Dispatch
import Devices

import KVM
import KVMAccel
import Loader
import Logging
import Memory
import Synchronization
import VMMSys

/// QEMU's `pc` machine for small kernels loaded with `-kernel`: RAM split around the PCI
/// hole, a BIOS-area ROM holding the ACPI tables, the in-kernel irqchip and PIT, the PC
/// devices small test kernels expect, and one thread per vCPU. Built only through the
/// memory API; the KVM accelerator is just a listener. QEMU: `pc_init1()` (hw/i386/pc_piix.c).
public final class PCMachine: Sendable {
    /// The configuration the machine was built from.
    public let configuration: MachineConfiguration
    /// Where RAM sits below and above 4 GiB. QEMU: pc_memory_init().
    public let layout: PCMemoryLayout
    /// KVM, the VM, the memory roots and the accelerator, as every machine here has them.
    public let core: MachineCore
    /// The opened /dev/kvm.
    public var kvm: KVMSystem { core.kvm }
    /// The KVM VM. QEMU: kvm_init().
    public var vm: VirtualMachine { core.vm }
    /// The memory listener that maps RAM into KVM slots and ioeventfds. QEMU: kvm_memory_listener_register().
    public var accelerator: KVMAccelerator { core.accelerator }
    /// The memory API state the address spaces share.
    public var memorySystem: MemorySystem { core.memorySystem }
    /// The system memory address space. QEMU: address_space_memory.
    public var memory: AddressSpace { core.memory }
    /// The I/O port address space. QEMU: address_space_io.
    public var io: AddressSpace { core.io }
    /// One runner (and thread) per vCPU. QEMU: kvm_vcpu_thread_fn().
    public let runners: [VCPURunner]
    /// The built-in and configured devices.
    public let devices: PCDevices
    /// PCI memory space ("pci"): BARs, the BIOS and pc-testdev's iomem; system memory shows it
    /// wherever RAM and the chipset's own regions do not cover it.
    public let pciMemory: MemoryRegion
    let logger: Logger
    /// Why the run ended, once it has (the first request wins).
    let outcome = Mutex<(status: Int32, reason: String)?>(nil)
    /// Requests for the machine's main loop (reset, powerdown, exit), and its wake-up.
    let requests = Mutex<[MachineRequest]>([])
    let wakeMainLoop = DispatchSemaphore(value: 0)
    /// QEMU's RunState, and the serialisation of state changes (stop/cont/reset).
    let state = Mutex<RunState>(.prelaunch)
    let transition = Mutex<Void>(())
    /// Where QMP events go (the QMP servers subscribe).
    public let events = MachineEvents()
    /// How the kernel was loaded, for a reboot.
    let boot: Mutex<KernelBoot?>
    /// Where the direct boot put the FACS (its waking vector is where S3 resumes), if anywhere.
    let acpiFACS = Mutex<UInt64?>(nil)

    /// The firmware image, when the machine runs firmware (no `-kernel`, or `-bios`).
    public let bios: BIOSImage?

    /// Builds the machine and loads the kernel or the firmware; nothing runs until `run()`.
    /// - Throws: `MachineError`/`LoaderError`/`SystemError` with a one-line message.
    public init(_ configuration: MachineConfiguration, serial: (any SerialBackend)? = nil,
                memorySystem: MemorySystem = .shared, logger: Logger = Logger(label: "vmm.machine")) throws {
        // Firmware first: a missing BIOS is the user's first error, before KVM is touched.
        let bios = configuration.runsFirmware
            ? try BIOSImage.load(configuration.bios, dataDirectories: configuration.dataDirectories) : nil
        self.bios = bios
        self.configuration = configuration
        self.logger = logger
        layout = PCMemoryLayout(ramSize: configuration.memorySize)
        let core = try MachineCore(memorySystem: memorySystem, irqchip: true, pit: true, logger: logger)
        self.core = core
        StartupTrace.mark("vm-created")
        // Without firmware the machine programs the ELCR as SeaBIOS leaves it; with firmware it
        // starts as QEMU resets it (all edge) and SeaBIOS programs it.
        if bios == nil { try InterruptControllerSetup.programELCR(core.vm) }
        let amdHost = core.amdHost

        // Memory in QEMU's shape: the "system" and "io" roots; pc.ram shown through two aliases;
        // PCI memory as one container below everything else in system memory (priority -1), so
        // a BAR decodes only where no RAM is, wherever the guest moves it; the BIOS in PCI
        // memory at the top of 4 GiB, its last 128 KiB also at 0xe0000 ("isa-bios").
        // Without firmware the i440FX's PAM windows for 0xe0000-0xfffff show PCI memory over RAM
        // (QEMU's "pam-pci" aliases; 0xc0000-0xdffff stays RAM, as the guest finds it after
        // SeaBIOS); with firmware all 13 PAM segments and SMRAM follow the i440FX's registers.
        // QEMU: pc_memory_init(), i440fx_init() → pc_pci_as_mapping_init() and init_pam(),
        // pc_system_firmware_init() → x86_bios_rom_init().
        let systemRoot = core.systemRoot, ioRoot = core.ioRoot
        let ram = try MemoryRegion.ram(name: "pc.ram", size: configuration.memorySize)
        // The firmware tables at the top of low RAM (written by the direct boot or by SeaBIOS)
        // are a few KiB: small pages there, so they don't commit a 2 MiB huge page (a
        // deliberate difference: QEMU advises the whole block for huge pages).
        ram.ramBlock?.preferSmallPages(offset: layout.below4G - min(layout.below4G, PCMemoryLayout.firmwareTablesSize),
                                       length: PCMemoryLayout.firmwareTablesSize)
        systemRoot.addSubregion(MemoryRegion.alias(name: "ram-below-4g", target: ram, offset: 0, size: UInt128(layout.below4G)), at: 0)
        if layout.above4G > 0 {
            systemRoot.addSubregion(MemoryRegion.alias(name: "ram-above-4g", target: ram, offset: layout.below4G,
                                                       size: UInt128(layout.above4G)), at: PCMemoryLayout.highMemoryBase)
        }
        pciMemory = MemoryRegion.container(name: "pci", size: UInt128(1) << 64)
        systemRoot.addSubregion(pciMemory, at: 0, priority: -1)
        if let bios {
            _ = try PCFirmware.mapBIOS(bios, into: pciMemory)
        } else {
            let bios = try MemoryRegion.rom(name: "pc.bios", size: Self.biosSize)
            pciMemory.addSubregion(bios, at: Self.biosAddress)
            pciMemory.addSubregion(MemoryRegion.alias(name: "isa-bios", target: bios, offset: Self.biosSize - PCMemoryLayout.biosSize,
                                                      size: UInt128(PCMemoryLayout.biosSize)),
                                   at: PCMemoryLayout.biosBase, priority: 1)
            for (start, size) in Self.biosPAMWindows {
                systemRoot.addSubregion(MemoryRegion.alias(name: "pam-pci", target: pciMemory, offset: start, size: UInt128(size)),
                                        at: start, priority: 1)
            }
        }
        // Devices, before the accelerator attaches so their ioeventfds replay in one go.
        let exitBox = ExitBox()
        // Devices get the DMA accessor, which never writes ROM; loaders below keep the one that does.
        devices = try PCDevices(configuration: configuration, layout: layout, pciMemory: pciMemory, ioRoot: ioRoot,
                                dma: core.memory.dmaMemory, accelerator: core.accelerator, serial: serial, logger: logger,
                                hooks: PCDevices.Hooks(
                                    exit: { exitBox.request($0, reason: $1) },
                                    sleep: { exitBox.machine.withLock { $0?.machine }?.guestSleep($0) },
                                    alarm: { exitBox.machine.withLock { $0?.machine }?.rtcAlarm() },
                                    reset: { exitBox.machine.withLock { $0?.machine }?.requestReset(.guestReset) }))
        if bios != nil {
            devices.pci.host.bridge.attachMemoryControl(I440FXMemoryControl(ram: ram, pci: pciMemory, system: systemRoot),
                                                        ramSize: configuration.memorySize)
        }
        StartupTrace.mark("devices-realized")
        core.attach()
        // A memory slot KVM refused is the user's problem to hear about now, in one line.
        do { try core.accelerator.checkMemory() } catch { throw MachineError("\(error)") }
        StartupTrace.mark("memory-mapped")
        let memory = core.memory
        let guest = memory.guestMemory

        // Firmware, or firmware's work: ACPI tables in the BIOS area, the kernel and its boot
        // information.
        if let bios {
            try guest.write(bios.bytes, at: bios.address)
            var bootOrder = devices.bootOrder()
            if let kernelPath = configuration.kernel {
                bootOrder.append(try PCFirmware.addKernel(devices.fwCfg, configuration: configuration, layout: layout, kernelPath: kernelPath))
            }
            try PCFirmware.addItems(devices.fwCfg, configuration: configuration, layout: layout, amdHost: amdHost,
                                    bootOrder: try PCFirmware.sortedBootOrder(bootOrder), logger: logger)
            boot = Mutex(nil)
        } else {
            guard let kernelPath = configuration.kernel else { throw MachineError("no kernel given (-kernel FILE)") }
            let loaded = try Self.loadSoftware(configuration: configuration, layout: layout, kernelPath: kernelPath, amdHost: amdHost,
                                               fwCfg: devices.fwCfg, guest: guest, logger: logger)
            boot = Mutex(loaded.boot)
            acpiFACS.withLock { $0 = loaded.acpi?.facs }
        }
        StartupTrace.mark("kernel-loaded")

        // vCPUs: with firmware the BSP starts at the reset vector; without, it enters the kernel.
        // APs wait for INIT/SIPI in the kernel either way.
        var runners: [VCPURunner] = []
        for id in 0..<configuration.cpuCount {
            let cpuid = CPUIDPolicy.entries(supported: core.supportedCPUID, apicID: UInt32(id), cpuCount: configuration.cpuCount)
            let runner = try core.createVCPU(id: id, cpuid: cpuid, logger: logger)
            VCPUSetup.setInitialMSRs(runner.vcpu, logger: logger)
            try VCPUSetup.resetLocalAPIC(runner.vcpu, bsp: id == 0)
            if bios != nil {
                try VCPUSetup.resetToResetVector(runner.vcpu, bsp: id == 0, signature: CPUIDPolicy.signature(cpuid))
            } else if id == 0, let boot = boot.withLock({ $0 }) {
                try boot.enter(runner.vcpu, memory: guest)
            }
            runners.append(runner)
        }
        self.runners = runners
        StartupTrace.mark("vcpus-created")
        // Running from the start (monitors may ask before `run()` is called), unless -S.
        state.withLock { $0 = configuration.startPaused ? .prelaunch : .running }
        exitBox.machine.withLock { $0 = WeakMachine(self) }
    }

    /// QEMU's pc.bios without a -bios file: SeaBIOS's 256 KiB, ending at 4 GiB.
    static let biosSize: UInt64 = 0x4_0000
    static let biosAddress: UInt64 = (1 << 32) - biosSize
    /// The i440FX PAM segments over the BIOS area: four of 16 KiB from 0xe0000, one of 64 KiB
    /// at 0xf0000. QEMU: init_pam() calls in i440fx_init().
    static let biosPAMWindows: [(UInt64, UInt64)] = [(0xe_0000, 0x4000), (0xe_4000, 0x4000), (0xe_8000, 0x4000),
                                                     (0xe_c000, 0x4000), (0xf_0000, 0x1_0000)]

    /// What firmware and QEMU's loader leave in guest memory before the kernel runs: the ACPI
    /// tables, the fw_cfg files, the kernel (and modules or initrd) with its boot information.
    /// Done at start and again at each reboot (the guest may have overwritten any of it).
    /// The tables go where SeaBIOS puts them, in the RAM at the top of low memory the memory
    /// map reserves for firmware — RAM, so the OS can write the FACS (its waking vector, the
    /// global lock) — with the RSDP in the BIOS area; with too little RAM for that area, all
    /// in the BIOS area.
    static func loadSoftware(configuration: MachineConfiguration, layout: PCMemoryLayout, kernelPath: String, amdHost: Bool,
                             fwCfg: FwCfg, guest: GuestMemory, logger: Logger) throws -> (boot: KernelBoot, acpi: ACPITableAddresses?) {
        var acpiConfiguration = ACPIConfiguration(cpuCount: configuration.cpuCount)
        acpiConfiguration.s3 = true
        if layout.below4G > 0x10_0000 + PCMemoryLayout.firmwareTablesSize {
            acpiConfiguration.tablesAddress = layout.below4G - PCMemoryLayout.firmwareTablesSize
            acpiConfiguration.tablesLimit = layout.below4G
        }
        let acpi = configuration.acpi ? try ACPITables.write(acpiConfiguration, into: guest) : nil
        try Self.addFirmwareFiles(fwCfg, guest: guest, acpi: acpi, tablesStart: acpiConfiguration.tablesAddress,
                                  e820: layout.qemuE820Table(amdHost: amdHost), logger: logger)
        // Like QEMU, which copies ELF segments into whatever RAM or ROM backs their address,
        // a segment may land anywhere in guest memory (e.g. just below 1 MiB in the BIOS area).
        var usable: [Range<UInt64>] = [0..<layout.below4G]
        if layout.above4G > 0 { usable.append(PCMemoryLayout.highMemoryBase..<(PCMemoryLayout.highMemoryBase + layout.above4G)) }
        let e820 = layout.memoryMap(amdHost: amdHost)
            .map { E820Entry(base: $0.base, length: $0.length, kind: E820Entry.Kind(rawValue: $0.kind.rawValue) ?? .reserved) }
        let kernelBytes = try MultibootLoader.readFile(kernelPath, what: "kernel")
        return (try KernelBoot.load(kernelBytes, path: kernelPath, configuration: configuration, layout: layout,
                                    usableRAM: usable, memoryMap: e820, into: guest), acpi)
    }

    /// The fw_cfg files QEMU's pc offers firmware: the e820 map, the ACPI tables and RSDP,
    /// the boot-fail wait. QEMU: `fw_cfg_add_file()` calls in pc.c and acpi-build.c.
    static func addFirmwareFiles(_ fwCfg: FwCfg, guest: GuestMemory, acpi: ACPITableAddresses?, tablesStart: UInt64,
                                 e820 table: [PCMemoryLayout.MapEntry], logger: Logger) throws {
        var e820: [UInt8] = []
        for e in table {
            for v in [e.base, e.length] { for b in 0..<8 { e820.append(UInt8(truncatingIfNeeded: v >> (8 * UInt64(b)))) } }
            for b in 0..<4 { e820.append(UInt8(truncatingIfNeeded: e.kind.rawValue >> (8 * UInt32(b)))) }
        }
        var files: [(String, [UInt8])] = [("etc/e820", e820), ("etc/boot-fail-wait", [0xff, 0xff, 0xff, 0xff])]
        if let acpi {
            files.append(("etc/acpi/rsdp", try guest.read(at: acpi.rsdp, count: 36)))
            files.append(("etc/acpi/tables", try guest.read(at: tablesStart, count: Int(acpi.tablesEnd - tablesStart))))
        }
        for (name, data) in files {
            do { try fwCfg.addFile(name: name, data: data) } catch { logger.warning("fw_cfg \(name): \(error)") }
        }
    }

    /// Runs the guest until it ends (isa-debug-exit, shutdown, quit, a fatal vCPU error) and
    /// returns the process exit status QEMU would have. The calling thread is the machine's
    /// main loop: it serves reset and power requests, so no vCPU ever waits for itself.
    /// With `-S` the vCPUs wait for `resume()` (QMP `cont`). QEMU: qemu_main_loop().
    public func run() -> Int32 {
        devices.ioThread.start()
        defer { devices.ioThread.stop() }
        let startPaused = configuration.startPaused
        if startPaused && runState == .prelaunch {
            for r in runners { r.pause() }
        }
        StartupTrace.mark("vcpus-started")
        for (i, r) in runners.enumerated() { startVCPU(i, r) }
        while true {
            wakeMainLoop.wait()
            let pending = requests.withLock { r in defer { r = [] }; return r }
            for request in pending {
                switch request {
                case .reset(let cause): performReset(cause)
                case .suspend: performSuspend()
                case .wakeup(let reason): performWakeup(reason)
                case .exit: break
                }
            }
            if outcome.withLock({ $0 }) != nil { break }
        }
        for r in runners { r.stop() }
        return outcome.withLock { $0?.status } ?? 0
    }

    /// Starts vCPU `i`'s thread; what ends its run becomes a machine request.
    func startVCPU(_ i: Int, _ r: VCPURunner) {
        r.start(name: "vcpu\(i)") { [self] reason in
            switch reason {
            case .stopped:
                break
            case .shutdown, .reset:
                // A triple fault (or KVM's reset event) is a guest reset. QEMU:
                // qemu_system_reset_request(SHUTDOWN_CAUSE_GUEST_RESET).
                requestReset(.guestReset)
            case .halted:
                requestExit(status: 0, reason: "vCPU \(i): halted with no interrupt controller")
            case .failed(let why):
                logger.error("vCPU \(i): \(why)")
                state.withLock { $0 = .internalError }
                requestExit(status: 1, reason: "vCPU \(i) failed")
            }
        }
    }

    /// Why the run ended (the first request's reason), once it has.
    public var exitReason: String? { outcome.withLock { $0?.reason } }

    /// Ends the run with `status` (the first request wins); `reason` is logged at debug
    /// level (QEMU prints nothing either). QEMU: `qemu_system_shutdown_request()`.
    public func requestExit(status: Int32, reason: String = "requested") {
        let first = outcome.withLock { o -> Bool in
            guard o == nil else { return false }
            o = (status, reason)
            return true
        }
        guard first else { return }
        logger.debug("machine exit \(status): \(reason)")
        for r in runners { r.stop() }
        requests.withLock { $0.append(.exit) }
        wakeMainLoop.signal()
    }
}

/// Lets devices created before the machine finished initializing ask it to exit.
final class ExitBox: Sendable {
    let machine = Mutex<WeakMachine?>(nil)
    func request(_ status: Int32, reason: String) {
        if let m = machine.withLock({ $0?.machine }) { m.requestExit(status: status, reason: reason) }
    }
}

struct WeakMachine: @unchecked Sendable {
    weak var machine: PCMachine?
    init(_ m: PCMachine) { machine = m }
}
