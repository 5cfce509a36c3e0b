internal import CVirtIO
import Devices
import Logging
import Memory
import Synchronization
import VMMSys

/// A virtio device on PCI through the modern (virtio 1.x) interface: the common, ISR, device
/// and notify structures in BAR4, found through vendor capabilities; MSI-X in BAR1. Each
/// queue's doorbell is an ioeventfd (zero-length "fast MMIO" when the accelerator has it)
/// added once the driver is ready, and the I/O thread serves the queue when it fires; the
/// completion interrupt goes out through the MSI-X vector's irqfd. Neither direction exits
/// to userspace. QEMU: virtio-pci (hw/virtio/virtio-pci.c), modern-only layout in BAR4.
public final class VirtIOPCI: PCIDevice, VirtIOTransport, Resettable, @unchecked Sendable {
    /// Where the four structures lie in BAR 4, 4 KiB each, as QEMU places them: common, ISR,
    /// device-specific, notify. QEMU: virtio_pci_realize()'s `common`/`isr`/`device`/`notify`
    /// regions (the spec leaves the layout to the device, so these are QEMU's numbers).
    /// Where the common configuration and the ISR status lie in BAR 4.
    public static let commonOffset: UInt64 = 0x0, isrOffset: UInt64 = 0x1000
    /// Where the device-specific configuration and the doorbells lie in BAR 4.
    public static let deviceOffset: UInt64 = 0x2000, notifyOffset: UInt64 = 0x3000
    /// Bytes between two queues' doorbells in the notify structure (`notify_off_multiplier`).
    /// QEMU: virtio_pci_queue_mem_mult() without page-per-vq.
    public static let notifyMultiplier: UInt32 = 4
    /// The BAR holding the structures. QEMU: modern_mem_bar_idx.
    static let modernBAR: UInt8 = 4
    /// Each structure's length in its capability. QEMU: the 0x1000 of each region.
    static let structureLength: UInt32 = 0x1000
    /// VIRTIO_MSI_NO_VECTOR.
    static let noVector = UInt16(VIRTIO_MSI_NO_VECTOR)
    /// VIRTIO_F_VERSION_1, VIRTIO_RING_F_EVENT_IDX, VIRTIO_RING_F_INDIRECT_DESC.
    static let versionOne = UInt64(1) << VIRTIO_F_VERSION_1
    static let eventIdx = UInt64(1) << VIRTIO_RING_F_EVENT_IDX
    static let indirectDesc = UInt64(1) << VIRTIO_RING_F_INDIRECT_DESC
    /// VIRTIO_CONFIG_S_DRIVER_OK, _FEATURES_OK, _NEEDS_RESET.
    static let statusDriverOK = UInt8(VIRTIO_CONFIG_S_DRIVER_OK), statusFeaturesOK = UInt8(VIRTIO_CONFIG_S_FEATURES_OK)
    static let statusNeedsReset = UInt8(VIRTIO_CONFIG_S_NEEDS_RESET)
    /// ISR bits: a used buffer (bit 0; the uapi headers name only the other one), a
    /// configuration change (VIRTIO_PCI_ISR_CONFIG).
    static let isrQueue: UInt8 = 1, isrConfig = UInt8(VIRTIO_PCI_ISR_CONFIG)
    /// Red Hat's PCI vendor ID, which every virtio PCI function carries (also as subsystem
    /// vendor). QEMU: PCI_VENDOR_ID_REDHAT_QUMRANET (not in the kernel's uapi headers).
    static let pciVendorID: UInt16 = 0x1af4
    /// A modern-only device's PCI device ID is this plus its virtio device ID (virtio 1.x
    /// §4.1.2.1). QEMU: PCI_DEVICE_ID_VIRTIO_10_BASE (not in the uapi headers).
    static let modernDeviceIDBase: UInt16 = 0x1040
    /// The transitional PCI device IDs QEMU gives the device types that have one (virtio 1.x
    /// §4.1.2.3): the same function then also answers legacy drivers' probes by ID.
    /// QEMU: virtio_pci_device_plugged() (pci_dev_id = the type's transitional ID).
    static let transitionalDeviceIDs: [UInt16: UInt16] = [
        UInt16(VIRTIO_ID_NET): UInt16(VIRTIO_TRANS_ID_NET), UInt16(VIRTIO_ID_BLOCK): UInt16(VIRTIO_TRANS_ID_BLOCK),
        UInt16(VIRTIO_ID_BALLOON): UInt16(VIRTIO_TRANS_ID_BALLOON), UInt16(VIRTIO_ID_CONSOLE): UInt16(VIRTIO_TRANS_ID_CONSOLE),
        UInt16(VIRTIO_ID_SCSI): UInt16(VIRTIO_TRANS_ID_SCSI), UInt16(VIRTIO_ID_RNG): UInt16(VIRTIO_TRANS_ID_RNG),
        UInt16(VIRTIO_ID_9P): UInt16(VIRTIO_TRANS_ID_9P),
    ]

    /// The device type behind the transport.
    public let device: any VirtIODevice
    /// The device's queues, in its order (sizes capped at `VirtQueue.maxSize`).
    public let queues: [VirtQueue]
    /// One per queue: the doorbell the guest rings (through the kernel or userspace).
    public let notifiers: [EventNotifier]
    /// The MSI-X table and PBA in BAR1; nil with `vectors=0` (INTx only).
    public let msix: MSIX?
    /// The transport properties (QEMU's virtio-pci `-device` properties).
    public let options: Options
    /// BAR4: the modern configuration structures.
    public let modernRegion: MemoryRegion
    let notifyRegion: MemoryRegion
    /// Serves the queues (and the device's own backend descriptors).
    public let ioThread: IOThread
    private let dma: GuestMemory
    private let intx: IRQ
    private let fastMMIO: Bool
    /// Transport features offered: VERSION_1, and INDIRECT_DESC / EVENT_IDX unless turned off.
    private let offeredTransportFeatures: UInt64
    private let logger: Logger
    private let msixCapabilityOffset = Atomic<Int>(0)
    /// Where the VIRTIO_PCI_CAP_PCI_CFG capability is (0x84, as QEMU's); see
    /// VirtIOPCI+ConfigWindow.swift.
    let pciCfgCapabilityOffset = Atomic<Int>(0)
    /// Guest-provoked errors (broken rings, bad requests) are logged through this, rate-limited.
    private let errorLog = RateLimitedLog()
    /// The device lock: the I/O thread's turn on a queue (pop, device work, push), device
    /// reset, queue enable and DRIVER_OK each hold it, so a reset can never race a pop that is
    /// still writing the old rings. Lock order: `processing`, then `state`. QEMU: the BQL /
    /// the AioContext lock around virtio_queue_notify_vq() and virtio_reset().
    private let processing = Mutex<Void>(())

    /// QEMU's virtio-pci device properties this transport honours.
    public struct Options: Sendable, Equatable {
        /// MSI-X vectors (`vectors=`); nil: one per queue plus the config vector (QEMU's
        /// DEV_NVECTORS_UNSPECIFIED); 0: no MSI-X, INTx only.
        public var vectors: Int?
        /// Queue doorbells become ioeventfds at DRIVER_OK (`ioeventfd=`); off: every kick exits
        /// to the VMM, which hands it to the I/O thread.
        public var ioeventfd = true
        /// Offer VIRTIO_RING_F_EVENT_IDX (`event_idx=`).
        public var eventIndex = true
        /// Offer VIRTIO_RING_F_INDIRECT_DESC (`indirect_desc=`).
        public var indirectDescriptors = true

        /// QEMU's defaults: a vector per queue plus config, ioeventfds, EVENT_IDX and INDIRECT_DESC
        /// on.
        public init(vectors: Int? = nil, ioeventfd: Bool = true, eventIndex: Bool = true, indirectDescriptors: Bool = true) {
            self.vectors = vectors
            self.ioeventfd = ioeventfd
            self.eventIndex = eventIndex
            self.indirectDescriptors = indirectDescriptors
        }
    }

    struct QueueConfig {
        var size: UInt16
        var vector: UInt16 = VirtIOPCI.noVector
        var enabled = false
        var desc: UInt64 = 0, driver: UInt64 = 0, device: UInt64 = 0
    }

    struct State {
        var deviceFeatureSelect: UInt32 = 0, driverFeatureSelect: UInt32 = 0
        var driverFeatures: UInt64 = 0
        var status: UInt8 = 0
        var configGeneration: UInt8 = 0
        var queueSelect: UInt16 = 0
        var configVector: UInt16 = VirtIOPCI.noVector
        var queues: [QueueConfig]
        var isr: UInt8 = 0
        var ioeventfdsStarted = false
        /// virtio_error() happened: nothing is processed until the driver resets the device.
        var broken = false
    }

    private let state: Mutex<State>

    /// - Parameters:
    ///   - dma: the guest memory the device reads and writes (the machine's memory space).
    ///   - msiController: where MSI-X messages go (KVM irqfds on the pc machine).
    ///   - intx: the INTx line used while MSI-X is off.
    ///   - ioThread: serves the queues.
    ///   - fastMMIO: register zero-length ioeventfds (KVM_CAP_IOEVENTFD_ANY_LENGTH).
    ///   - options: QEMU's virtio-pci properties (vectors, ioeventfd, event_idx, indirect_desc).
    public init(device: any VirtIODevice, dma: GuestMemory, msiController: any MSIController, intx: IRQ,
                ioThread: IOThread, fastMMIO: Bool, options: Options = Options(),
                logger: Logger = Logger(label: "vmm.virtio")) throws(SystemError) {
        self.options = options
        offeredTransportFeatures = Self.versionOne | (options.indirectDescriptors ? Self.indirectDesc : 0)
            | (options.eventIndex ? Self.eventIdx : 0)
        self.device = device
        self.dma = dma
        self.intx = intx
        self.fastMMIO = fastMMIO
        self.logger = logger
        self.ioThread = ioThread
        queues = device.queueSizes.map { VirtQueue(maxSize: min($0, VirtQueue.maxSize)) }
        var notifiers: [EventNotifier] = []
        for _ in device.queueSizes { notifiers.append(try EventNotifier()) }
        self.notifiers = notifiers
        state = Mutex(State(queues: device.queueSizes.map { QueueConfig(size: $0) }))
        let vectors = options.vectors ?? device.queueSizes.count + 1
        msix = vectors == 0 ? nil : MSIX(vectors: vectors, controller: msiController, name: "virtio-pci-msix")

        let owner = RegionOwner<VirtIOPCI>()
        modernRegion = .container(name: "virtio-pci", size: 0x4000)
        notifyRegion = .io(name: "virtio-pci-notify", size: 0x1000,
                           ops: owner.ops(read: { _ in { _, _ in 0 } }, write: { d in { d.userspaceNotify($0, $1, $2) } }, unbound: 0))
        modernRegion.addSubregion(.io(name: "virtio-pci-common", size: 0x1000,
                                      ops: owner.ops(read: VirtIOPCI.readCommon, write: VirtIOPCI.writeCommon, unbound: 0)),
                                  at: Self.commonOffset)
        modernRegion.addSubregion(.io(name: "virtio-pci-isr", size: 0x1000,
                                      ops: owner.ops(read: VirtIOPCI.readISR, write: { _ in { _, _, _ in } }, unbound: 0)),
                                  at: Self.isrOffset)
        modernRegion.addSubregion(.io(name: "virtio-pci-device", size: 0x1000,
                                      ops: owner.ops(read: VirtIOPCI.readDeviceConfig, write: VirtIOPCI.writeDeviceConfig, unbound: 0)),
                                  at: Self.deviceOffset)
        modernRegion.addSubregion(notifyRegion, at: Self.notifyOffset)

        let pciID = Self.transitionalDeviceIDs[device.deviceType] ?? Self.modernDeviceIDBase + device.deviceType
        super.init(vendorID: Self.pciVendorID, deviceID: pciID, classCode: device.pciClassCode, revision: 0, interruptPin: 1,
                   subsystemVendorID: Self.pciVendorID, subsystemID: device.deviceType)
        if let msix { registerBAR(1, region: msix.region, kind: .memory32) }
        registerBAR(Int(Self.modernBAR), region: modernRegion, kind: .memory64Prefetchable)
        let capabilities = [
            Self.structureCapability(VIRTIO_PCI_CAP_COMMON_CFG, at: Self.commonOffset),
            Self.structureCapability(VIRTIO_PCI_CAP_ISR_CFG, at: Self.isrOffset),
            Self.structureCapability(VIRTIO_PCI_CAP_DEVICE_CFG, at: Self.deviceOffset),
            Self.structureCapability(VIRTIO_PCI_CAP_NOTIFY_CFG, at: Self.notifyOffset, notifyMultiplier: Self.notifyMultiplier),
        ]
        for c in capabilities { addCapability(c) }
        // The configuration-access capability follows the four structures and precedes
        // MSI-X, so the list is QEMU's: 0x40 common, 0x50 ISR, 0x60 device, 0x70 notify,
        // 0x84 PCI_CFG, 0x98 MSI-X. QEMU: virtio_pci_device_plugged().
        let window = Self.pciCfgCapability()
        pciCfgCapabilityOffset.store(addCapability(window.bytes, writeMask: window.writeMask) ?? 0, ordering: .releasing)
        if let msix {
            let (msixBytes, msixMask) = msix.capability(bar: 1)
            msixCapabilityOffset.store(addCapability(msixBytes, writeMask: msixMask) ?? 0, ordering: .releasing)
        }
        owner.set(self)
        for (i, n) in notifiers.enumerated() {
            try ioThread.watch(n) { [weak self] in self?.serve(queue: i) ?? .idle }
        }
        do { try device.attach(self) } catch let error as SystemError { throw error } catch {
            throw SystemError(operation: "virtio device attach", arguments: "\(error)", code: .ioError)
        }
    }

    /// A vendor capability (struct virtio_pci_cap, or virtio_pci_notify_cap with
    /// `notifyMultiplier`) pointing at one structure of BAR 4: `structureLength` bytes at
    /// `offset`. QEMU: virtio_pci_modern_region_map() → virtio_pci_add_mem_cap().
    static func structureCapability(_ type: Int32, at offset: UInt64, notifyMultiplier: UInt32? = nil) -> [UInt8] {
        var bytes = [UInt8](repeating: 0, count: notifyMultiplier == nil ? CVIRTIO_PCI_CAP_SIZE : CVIRTIO_PCI_NOTIFY_CAP_SIZE)
        func put32(_ value: UInt32, at field: Int32) {
            for i in 0..<4 { bytes[Int(field) + i] = UInt8(truncatingIfNeeded: value >> (8 * UInt32(i))) }
        }
        bytes[Int(VIRTIO_PCI_CAP_VNDR)] = UInt8(PCI_CAP_ID_VNDR)
        bytes[Int(VIRTIO_PCI_CAP_LEN)] = UInt8(bytes.count)
        bytes[Int(VIRTIO_PCI_CAP_CFG_TYPE)] = UInt8(type)
        bytes[Int(VIRTIO_PCI_CAP_BAR)] = modernBAR
        put32(UInt32(offset), at: VIRTIO_PCI_CAP_OFFSET)
        put32(structureLength, at: VIRTIO_PCI_CAP_LENGTH)
        if let notifyMultiplier { put32(notifyMultiplier, at: VIRTIO_PCI_NOTIFY_CAP_MULT) }
        return bytes
    }

    // MARK: PCI config

    /// A read overlapping the PCI_CFG capability's data first makes the window's read into it.
    /// QEMU: virtio_read_config().
    public override func configRead(offset: Int, size: Int) -> UInt32 {
        pciCfgWindow(offset: offset, size: size, isWrite: false,
                     read: { super.configRead(offset: $0, size: $1) },
                     write: { super.configWrite(offset: $0, value: $1, size: $2) })
        return super.configRead(offset: offset, size: size)
    }

    /// QEMU: virtio_write_config() (MSI-X control through msix_write_config(), the PCI_CFG
    /// window's write).
    public override func configWrite(offset: Int, value: UInt32, size: Int) {
        super.configWrite(offset: offset, value: value, size: size)
        pciCfgWindow(offset: offset, size: size, isWrite: true,
                     read: { super.configRead(offset: $0, size: $1) },
                     write: { super.configWrite(offset: $0, value: $1, size: $2) })
        let cap = msixCapabilityOffset.load(ordering: .acquiring)
        let control = cap + 2
        if cap != 0, offset < control + 2, offset + size > control {
            msix?.controlChanged(reading: { UInt16(truncatingIfNeeded: self.configRead(offset: control, size: 2)) })
        }
    }

    // MARK: Common configuration (virtio 1.x §4.1.4.3): struct virtio_pci_common_cfg, offsets VIRTIO_PCI_COMMON_*

    private func readCommon(_ offset: UInt64, _ size: Int) -> UInt64 {
        state.withLock { s in
            let q = Int(s.queueSelect)
            let queue = s.queues.indices.contains(q) ? s.queues[q] : nil
            let features = device.features | offeredTransportFeatures
            switch offset {
            case UInt64(VIRTIO_PCI_COMMON_DFSELECT): return UInt64(s.deviceFeatureSelect)
            case UInt64(VIRTIO_PCI_COMMON_DF): return s.deviceFeatureSelect < 2 ? (features >> (32 * UInt64(s.deviceFeatureSelect))) & 0xffff_ffff : 0
            case UInt64(VIRTIO_PCI_COMMON_GFSELECT): return UInt64(s.driverFeatureSelect)
            case UInt64(VIRTIO_PCI_COMMON_GF): return s.driverFeatureSelect < 2 ? (s.driverFeatures >> (32 * UInt64(s.driverFeatureSelect))) & 0xffff_ffff : 0
            case UInt64(VIRTIO_PCI_COMMON_MSIX): return UInt64(s.configVector)
            case UInt64(VIRTIO_PCI_COMMON_NUMQ): return UInt64(s.queues.count)
            case UInt64(VIRTIO_PCI_COMMON_STATUS): return UInt64(s.status)
            case UInt64(VIRTIO_PCI_COMMON_CFGGENERATION): return UInt64(s.configGeneration)
            case UInt64(VIRTIO_PCI_COMMON_Q_SELECT): return UInt64(s.queueSelect)
            case UInt64(VIRTIO_PCI_COMMON_Q_SIZE): return UInt64(queue?.size ?? 0)
            case UInt64(VIRTIO_PCI_COMMON_Q_MSIX): return UInt64(queue?.vector ?? Self.noVector)
            case UInt64(VIRTIO_PCI_COMMON_Q_ENABLE): return queue?.enabled == true ? 1 : 0
            case UInt64(VIRTIO_PCI_COMMON_Q_NOFF): return queue == nil ? 0 : UInt64(q)
            case UInt64(VIRTIO_PCI_COMMON_Q_DESCLO): return (queue?.desc ?? 0) & 0xffff_ffff
            case UInt64(VIRTIO_PCI_COMMON_Q_DESCHI): return (queue?.desc ?? 0) >> 32
            case UInt64(VIRTIO_PCI_COMMON_Q_AVAILLO): return (queue?.driver ?? 0) & 0xffff_ffff
            case UInt64(VIRTIO_PCI_COMMON_Q_AVAILHI): return (queue?.driver ?? 0) >> 32
            case UInt64(VIRTIO_PCI_COMMON_Q_USEDLO): return (queue?.device ?? 0) & 0xffff_ffff
            case UInt64(VIRTIO_PCI_COMMON_Q_USEDHI): return (queue?.device ?? 0) >> 32
            default: return 0
            }
        }
    }

    private func writeCommon(_ offset: UInt64, _ value: UInt64, _ size: Int) {
        // Status and queue-enable writes change what the I/O thread may touch: serialize all
        // common-config writes with it (they are rare: driver setup and reset).
        processing.withLock { _ in
            var startIoeventfds = false, reset = false
            var newStatus: UInt8?, featuresOK: UInt64?
            var enable: (queue: Int, config: QueueConfig, eventIdx: Bool)?
            state.withLock { s in
                let q = Int(s.queueSelect)
                let has = s.queues.indices.contains(q)
                let v32 = value & 0xffff_ffff
                func setHalf(_ field: inout UInt64, high: Bool) {
                    field = high ? (field & 0xffff_ffff) | v32 << 32 : (field & ~0xffff_ffff) | v32
                }
                switch offset {
                case UInt64(VIRTIO_PCI_COMMON_DFSELECT): s.deviceFeatureSelect = UInt32(v32)
                case UInt64(VIRTIO_PCI_COMMON_GFSELECT): s.driverFeatureSelect = UInt32(v32)
                case UInt64(VIRTIO_PCI_COMMON_GF):
                    if s.driverFeatureSelect < 2 {
                        let shift = 32 * UInt64(s.driverFeatureSelect)
                        let offered = device.features | offeredTransportFeatures
                        s.driverFeatures = (s.driverFeatures & ~(0xffff_ffff << shift)) | ((v32 << shift) & offered)
                    }
                case UInt64(VIRTIO_PCI_COMMON_MSIX): s.configVector = vectorOrNone(value)
                case UInt64(VIRTIO_PCI_COMMON_STATUS):
                    let status = UInt8(truncatingIfNeeded: value)
                    if status == 0 {
                        reset = true
                    } else {
                        if status & Self.statusDriverOK != 0, s.status & Self.statusDriverOK == 0, !s.broken { startIoeventfds = true }
                        if status & Self.statusFeaturesOK != 0, s.status & Self.statusFeaturesOK == 0 { featuresOK = s.driverFeatures }
                        // Deliberate difference: NEEDS_RESET stays set while the device is
                        // broken, whatever the driver writes (QEMU lets a write clear the bit
                        // while the device stays broken).
                        s.status = status | (s.broken ? Self.statusNeedsReset : 0)
                        newStatus = s.status
                    }
                case UInt64(VIRTIO_PCI_COMMON_Q_SELECT): s.queueSelect = UInt16(truncatingIfNeeded: value)
                case UInt64(VIRTIO_PCI_COMMON_Q_SIZE) where has && !s.queues[q].enabled:
                    let n = UInt16(truncatingIfNeeded: value)
                    if queues[q].accepts(size: n) { s.queues[q].size = n }
                case UInt64(VIRTIO_PCI_COMMON_Q_MSIX) where has: s.queues[q].vector = vectorOrNone(value)
                case UInt64(VIRTIO_PCI_COMMON_Q_ENABLE) where has && value & 1 == 1 && !s.queues[q].enabled:
                    s.queues[q].enabled = true
                    enable = (q, s.queues[q], s.driverFeatures & Self.eventIdx != 0)
                case UInt64(VIRTIO_PCI_COMMON_Q_DESCLO) where has: setHalf(&s.queues[q].desc, high: false)
                case UInt64(VIRTIO_PCI_COMMON_Q_DESCHI) where has: setHalf(&s.queues[q].desc, high: true)
                case UInt64(VIRTIO_PCI_COMMON_Q_AVAILLO) where has: setHalf(&s.queues[q].driver, high: false)
                case UInt64(VIRTIO_PCI_COMMON_Q_AVAILHI) where has: setHalf(&s.queues[q].driver, high: true)
                case UInt64(VIRTIO_PCI_COMMON_Q_USEDLO) where has: setHalf(&s.queues[q].device, high: false)
                case UInt64(VIRTIO_PCI_COMMON_Q_USEDHI) where has: setHalf(&s.queues[q].device, high: true)
                default: break
                }
            }
            if reset { resetDevice() }
            if let features = featuresOK { device.featuresNegotiated(features) }
            if let e = enable {
                // The rings must lie in guest RAM. QEMU: virtio_queue_set_rings() →
                // virtio_init_region_cache(), "Cannot map desc/used/avail".
                do {
                    try queues[e.queue].configure(size: e.config.size, desc: e.config.desc, avail: e.config.driver,
                                                  used: e.config.device, eventIdx: e.eventIdx, memory: dma)
                } catch {
                    virtioError("queue \(e.queue): \(error)")
                }
                device.featuresNegotiated(state.withLock { $0.driverFeatures })
            }
            if startIoeventfds {
                setIoeventfds(true)
                // Kick right away: chains the driver published before DRIVER_OK (a receive
                // queue filled during setup) get served without waiting for another kick.
                // QEMU: virtio_device_start_ioeventfd_impl().
                if options.ioeventfd {
                    for (i, n) in notifiers.enumerated() where queues[i].isReady { n.set() }
                }
            }
            if let status = newStatus { device.statusChanged(status) }
        }
    }

    /// A vector number the driver chose, or NO_VECTOR when there is no such vector.
    private func vectorOrNone(_ value: UInt64) -> UInt16 {
        let v = UInt16(truncatingIfNeeded: value)
        return Int(v) < (msix?.vectorCount ?? 0) ? v : Self.noVector
    }

    /// A system reset: the device reset (as a status-0 write), MSI-X off and its table back to
    /// masked entries. BARs and the command register are the firmware's (the machine
    /// re-programs them). QEMU: virtio_pci_reset() + msix_reset().
    public func reset() {
        processing.withLock { _ in resetDevice() }
        let cap = msixCapabilityOffset.load(ordering: .acquiring)
        if cap != 0 {
            super.configWrite(offset: cap + 2, value: 0, size: 2)
            msix?.reset()
        }
    }

    /// Status 0: everything back to the initial state, the error state included. Called with
    /// the device lock held. QEMU: virtio_pci_reset() → virtio_reset().
    private func resetDevice() {
        setIoeventfds(false)
        state.withLock { s in
            s = State(queues: device.queueSizes.map { QueueConfig(size: $0) })
        }
        for q in queues { q.reset() }
        device.reset()
        intx.lower()
    }

    /// The device is broken (a hostile or buggy driver): DEVICE_NEEDS_RESET, a config-change
    /// interrupt once the driver is running, nothing processed until reset, one rate-limited
    /// log line. Called with the device lock held. QEMU: virtio_error() → virtio_notify_config().
    private func virtioError(_ message: String) {
        errorLog.log({ logger.error("\($0)") }) { "virtio-pci \(name): \(message); device needs reset" }
        state.withLock { s in
            s.broken = true
            s.status |= Self.statusNeedsReset
        }
        notifyConfigChange()
    }

    /// Bumps the configuration generation, sets ISR bit 1 and interrupts on the config vector;
    /// nothing before DRIVER_OK. QEMU: virtio_notify_config().
    public func notifyConfigChange() {
        let configVector = state.withLock { s -> UInt16? in
            guard s.status & Self.statusDriverOK != 0 else { return nil }
            s.isr |= Self.isrConfig
            s.configGeneration &+= 1
            return s.configVector
        }
        if let configVector { notify(vector: configVector) }
    }

    /// Interrupts the driver: the MSI-X vector when MSI-X is on (none for NO_VECTOR), else
    /// INTx at the level of ISR bit 0 — QEMU's quirk: a config change alone raises no INTx.
    /// QEMU: virtio_pci_notify().
    private func notify(vector: UInt16) {
        if let msix, msix.isEnabled {
            if vector != Self.noVector { msix.notify(Int(vector)) }
        } else if state.withLock({ $0.isr & Self.isrQueue != 0 }) {
            intx.raise()
        }
    }

    /// Name for log lines: the device type.
    private var name: String { "device \(device.deviceType)" }

    /// Adds (driver ready) or removes (reset) the queues' ioeventfds in one transaction.
    /// QEMU: virtio_pci_start/stop_ioeventfd() → virtio_pci_ioeventfd_assign().
    private func setIoeventfds(_ on: Bool) {
        guard options.ioeventfd else { return }
        let change = state.withLock { s -> Bool in
            guard s.ioeventfdsStarted != on else { return false }
            s.ioeventfdsStarted = on
            return true
        }
        guard change else { return }
        let size = fastMMIO ? 0 : 2
        notifyRegion.withTransaction {
            for (i, n) in notifiers.enumerated() {
                let offset = UInt64(i) * UInt64(Self.notifyMultiplier)
                do {
                    if on {
                        try notifyRegion.addEventfd(offset: offset, size: size, matchData: false, data: 0, notifier: n)
                    } else {
                        try notifyRegion.delEventfd(offset: offset, size: size, matchData: false, data: 0, notifier: n)
                    }
                } catch {
                    logger.error("virtio-pci: \(error)")
                }
            }
        }
    }

    /// A notify write that reached the device (no ioeventfd yet): hand it to the I/O thread.
    private func userspaceNotify(_ offset: UInt64, _ value: UInt64, _ size: Int) {
        let q = Int(offset / UInt64(Self.notifyMultiplier))
        if notifiers.indices.contains(q) { notifiers[q].set() }
    }

    private func readDeviceConfig(_ offset: UInt64, _ size: Int) -> UInt64 { device.readConfig(offset: offset, size: size) }
    private func writeDeviceConfig(_ offset: UInt64, _ value: UInt64, _ size: Int) { device.writeConfig(offset: offset, value: value, size: size) }

    private func readISR(_ offset: UInt64, _ size: Int) -> UInt64 {
        let isr = state.withLock { s -> UInt8 in
            defer { s.isr = 0 }
            return s.isr
        }
        if isr != 0 { intx.lower() }
        return UInt64(isr)
    }

    // MARK: The I/O thread's side

    /// One budgeted turn on queue `index`: serves what the driver published, interrupts it if
    /// it asked, and tells the I/O thread whether to come back. Runs on the I/O thread.
    /// QEMU: virtio_queue_notify_vq() → the device's handle_output → virtio_notify().
    public func serve(queue index: Int) -> IOThread.Next? {
        var budget = VirtQueueBudget.perWakeUp
        let progress: VirtQueueProgress? = withQueue(index) { (queue, memory) throws(VirtQueueError) in
            let p = try device.process(queue: index, queue, memory: memory, budget: &budget)
            return (p, p.interrupt)
        }
        guard let progress else { return nil }
        if budget.isExhausted { return .again }
        if let resume = progress.resumeAt { return .at(resume) }
        return .idle
    }

    /// Queue `index`, or nil past the last.
    public func queue(_ index: Int) -> VirtQueue? { queues.indices.contains(index) ? queues[index] : nil }

    /// Interrupts the driver for queue `index`: its MSI-X vector, or ISR bit 0 and INTx without
    /// MSI-X. QEMU: virtio_notify().
    public func notifyQueue(_ index: Int) {
        guard queues.indices.contains(index) else { return }
        let vector = state.withLock { s -> UInt16 in
            if msix?.isEnabled != true { s.isr |= Self.isrQueue }
            return s.queues[index].vector
        }
        notify(vector: vector)
    }

    /// Runs `body` on queue `index` under the device lock while the driver is ready, the device not
    /// broken and the queue enabled; interrupts when `body` asks; a thrown `VirtQueueError` breaks
    /// the device (virtio_error()). nil when not run.
    public func withQueue<R>(_ index: Int, _ body: (VirtQueue, GuestMemory) throws(VirtQueueError) -> (result: R, interrupt: Bool)) -> R? {
        guard queues.indices.contains(index) else { return nil }
        return processing.withLock { _ -> R? in
            let (ready, vector) = state.withLock { s in
                (s.status & Self.statusDriverOK != 0 && !s.broken, s.queues[index].vector)
            }
            guard ready, queues[index].isReady else { return nil }
            let outcome: (result: R, interrupt: Bool)
            do {
                outcome = try body(queues[index], dma)
            } catch {
                virtioError("queue \(index): \(error)")
                return nil
            }
            if outcome.interrupt {
                if msix?.isEnabled != true { state.withLock { $0.isr |= Self.isrQueue } }
                notify(vector: vector)
            }
            return outcome.result
        }
    }
}
