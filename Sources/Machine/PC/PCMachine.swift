import Dispatch
import Devices
import Foundation
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
    public let configuration: MachineConfiguration
    public let layout: PCMemoryLayout
    public let kvm: KVMSystem
    public let vm: VirtualMachine
    public let accelerator: KVMAccelerator
    public let memorySystem: MemorySystem
    public let memory: AddressSpace
    public let io: AddressSpace
    public let runners: [VCPURunner]
    public let devices: PCDevices
    let logger: Logger
    private let outcome = Mutex<(status: Int32, reason: String)?>(nil)
    private let finished = DispatchSemaphore(value: 0)

    /// Builds the machine and loads the kernel; nothing runs until `run()`.
    /// - Throws: `MachineError`/`LoaderError`/`SystemError` with a one-line message.
    public init(_ configuration: MachineConfiguration, serial: (any SerialBackend)? = nil,
                memorySystem: MemorySystem = .shared, logger: Logger = Logger(label: "vmm.machine")) throws {
        guard let kernelPath = configuration.kernel else { throw MachineError("no kernel given (-kernel FILE)") }
        self.configuration = configuration
        self.memorySystem = memorySystem
        self.logger = logger
        layout = PCMemoryLayout(ramSize: configuration.memorySize)
        kvm = try KVMDevice.open()
        vm = try kvm.createVM()
        try vm.setIdentityMapAddress(PCMemoryLayout.kvmIdentityMap)
        try vm.setTSSAddress(PCMemoryLayout.kvmTSS)
        let supported = try kvm.supportedCPUID()
        let amdHost = supported.first { $0.function == 0 }?.ebx == 0x6874_7541   // "Auth"enticAMD
        let memoryMap = layout.memoryMap(amdHost: amdHost)
        try vm.createIrqchip()
        try vm.createPIT2()

        // Memory: QEMU's "system" and "io" roots, pc.ram shown through two aliases, the BIOS area.
        let systemRoot = MemoryRegion.container(name: "system", size: UInt128(1) << 64)
        let ioRoot = MemoryRegion.container(name: "io", size: 0x10000)
        let ram = try MemoryRegion.ram(name: "pc.ram", size: configuration.memorySize)
        systemRoot.addSubregion(MemoryRegion.alias(name: "ram-below-4g", target: ram, offset: 0, size: UInt128(layout.below4G)), at: 0)
        if layout.above4G > 0 {
            systemRoot.addSubregion(MemoryRegion.alias(name: "ram-above-4g", target: ram, offset: layout.below4G,
                                                       size: UInt128(layout.above4G)), at: PCMemoryLayout.highMemoryBase)
        }
        let bios = try MemoryRegion.rom(name: "pc.bios", size: PCMemoryLayout.biosSize)
        systemRoot.addSubregion(bios, at: PCMemoryLayout.biosBase, priority: 1)
        memory = AddressSpace(root: systemRoot, name: "memory", system: memorySystem)
        io = AddressSpace(root: ioRoot, name: "I/O", system: memorySystem)
        accelerator = KVMAccelerator(vm: vm, logger: logger)

        // Devices, before the accelerator attaches so their ioeventfds replay in one go.
        let exitBox = ExitBox()
        devices = try PCDevices(configuration: configuration, layout: layout, systemRoot: systemRoot, ioRoot: ioRoot,
                                dma: memory.guestMemory, accelerator: accelerator, serial: serial, logger: logger,
                                requestExit: { exitBox.request($0, reason: $1) })
        accelerator.attach(memory: memory, io: io)

        // Firmware's work: ACPI tables in the BIOS area, the kernel and its boot information.
        let guest = memory.guestMemory
        let acpiConfiguration = ACPIConfiguration(cpuCount: configuration.cpuCount)
        let acpi = configuration.acpi ? try ACPITables.write(acpiConfiguration, into: guest) : nil
        try Self.addFirmwareFiles(devices.fwCfg, guest: guest, acpi: acpi, tablesStart: acpiConfiguration.tablesAddress,
                                  e820: layout.qemuE820Table(amdHost: amdHost), logger: logger)
        // Like QEMU, which copies ELF segments into whatever RAM or ROM backs their address,
        // a segment may land anywhere in guest memory (e.g. just below 1 MiB in the BIOS area).
        var usable: [Range<UInt64>] = [0..<layout.below4G]
        if layout.above4G > 0 { usable.append(PCMemoryLayout.highMemoryBase..<(PCMemoryLayout.highMemoryBase + layout.above4G)) }
        let e820 = memoryMap.map { E820Entry(base: $0.base, length: $0.length, kind: E820Entry.Kind(rawValue: $0.kind.rawValue) ?? .reserved) }
        let kernelBytes = try MultibootLoader.readFile(kernelPath, what: "kernel")
        let boot = try KernelBoot.load(kernelBytes, path: kernelPath, configuration: configuration, layout: layout,
                                       usableRAM: usable, memoryMap: e820, into: guest)

        // vCPUs: the BSP enters the kernel; APs wait in the kernel for INIT/SIPI.
        var runners: [VCPURunner] = []
        for id in 0..<configuration.cpuCount {
            let vcpu = try vm.createVCPU(id: UInt32(id))
            VCPUSetup.setCPUID(vcpu, policy: CPUIDPolicy.entries(supported: supported, apicID: UInt32(id),
                                                                 cpuCount: configuration.cpuCount),
                               fallback: supported, logger: logger)
            VCPUSetup.setInitialMSRs(vcpu, logger: logger)
            try VCPUSetup.resetLocalAPIC(vcpu, bsp: id == 0)
            if id == 0 { try boot.enter(vcpu, memory: guest) }
            runners.append(VCPURunner(vcpu: vcpu, memory: memory, io: io, logger: logger))
        }
        self.runners = runners
        exitBox.machine.withLock { $0 = WeakMachine(self) }
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

    /// Runs the guest until it ends (isa-debug-exit, shutdown, a fatal vCPU error, or
    /// `requestExit`), and returns the process exit status QEMU would have.
    public func run() -> Int32 {
        devices.ioThread.start()
        defer { devices.ioThread.stop() }
        for (i, r) in runners.enumerated() {
            r.start(name: "vcpu\(i)") { [self] reason in
                switch reason {
                case .stopped:
                    break
                case .shutdown, .reset, .halted:
                    // QEMU: a guest reset (triple fault) ends the run with -no-reboot (status 0);
                    // without a firmware to restart, we end it either way.
                    requestExit(status: 0, reason: "vCPU \(i): \(reason)")
                case .failed(let why):
                    logger.error("vCPU \(i): \(why)")
                    requestExit(status: 1, reason: "vCPU \(i) failed")
                }
            }
        }
        finished.wait()
        for r in runners { r.stop() }
        return outcome.withLock { $0?.status } ?? 0
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
        if first { logger.debug("machine exit \(status): \(reason)") }
        if first {
            for r in runners { r.stop() }
            finished.signal()
        }
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
