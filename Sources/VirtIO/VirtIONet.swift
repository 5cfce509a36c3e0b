internal import CVirtIO
import Logging
import Memory
import Synchronization
import SystemPackage
import VMMSys

/// The virtio network device over a tap (or any frame backend): QEMU's virtio-net without
/// vhost — transmit runs on the queue's notify ioeventfd, receive when the backend descriptor is
/// readable, both on the I/O thread; completions go back through the MSI-X irqfds with
/// EVENT_IDX suppression both ways. Nothing on the packet path allocates: frames move through
/// one receive and one transmit buffer per queue pair, chains are popped into reused lists, and
/// ring and buffer accesses go straight to guest RAM.
///
/// Queues: receive/transmit pairs (2i, 2i+1) and the control queue after the active pairs — at
/// 2 without MQ, at 2·max_pairs with it — as QEMU's virtio_net_set_multiqueue() arranges them.
///
/// Receive follows QEMU's virtio_net_receive_rcu(): with no guest buffers (or, with
/// MRG_RXBUF, not enough bytes for the frame) the frame read last stays here and the backend
/// stops being polled until the driver adds buffers and kicks (tap_read_poll(false)) — no busy
/// loop and no frame dropped. Frames the MAC/VLAN/mode filters refuse are dropped; so is a
/// frame larger than one buffer chain without MRG_RXBUF (the chain goes back unused).
///
/// The guest is hostile: a transmit chain without a readable header, a receive chain without
/// writable buffers, an empty queue in the middle of a merged frame or a control chain without
/// its headers break the device as QEMU's virtio_error() does (DEVICE_NEEDS_RESET); a transmit
/// frame too large for the transmit buffer is dropped. Every guest-given count goes through
/// checked arithmetic.
///
/// Deliberate differences from QEMU, each tested: without MRG_RXBUF `num_buffers` is written as
/// 1 (virtio 1.x §5.1.6.4 requires it; QEMU leaves the guest's bytes); MAC table entry counts
/// whose byte size overflows 32 bits are refused (QEMU's `entries * ETH_ALEN` wraps); at most
/// 31 queue pairs (64 MSI-X vectors per function here).
///
/// Guest RAM is read eight bytes per load into the transmit buffer: `RAMBlock` has no bulk copy
/// into a caller's buffer yet (its `read` returns a new array).
/// QEMU: hw/net/virtio-net.c, net/tap.c.
public final class VirtIONet: VirtIODevice {
    /// Receive and transmit queue size, and the control queue's. QEMU: VIRTIO_NET_RX/TX_QUEUE_DEFAULT_SIZE, 64.
    public static let dataQueueSize: UInt16 = 256, controlQueueSize: UInt16 = 64
    /// At most this many queue pairs (2 MSI-X vectors each, plus config and control, in 64).
    public static let maxQueuePairs = 31
    /// The guest's header: `virtio_net_hdr_mrg_rxbuf` (virtio 1.x always uses it).
    static let headerSize = CVIRTIO_NET_HDR_MRG_RXBUF_SIZE
    /// The header a tap with IFF_VNET_HDR exchanges: `virtio_net_hdr` (no num_buffers), and
    /// where num_buffers follows it in the guest's header.
    static let tapHeaderSize = CVIRTIO_NET_HDR_SIZE, numBuffersOffset = CVIRTIO_NET_HDR_NUM_BUFFERS
    /// One frame with its header: QEMU's NET_BUFSIZE (4096 + 65536).
    public static let frameBufferSize = 4096 + 65536

    /// The configured MAC address (what the configuration space reports after a reset).
    public let mac: MACAddress
    /// Queue pairs the device has (`-netdev tap,queues=`); the driver enables up to this many with
    /// MQ.
    public let maxPairs: Int
    /// Receive and transmit queue sizes (QEMU's `rx_queue_size`, `tx_queue_size`).
    public let rxQueueSize: UInt16, txQueueSize: UInt16
    /// Where frames go and come from; nil for a NIC with no peer.
    public let backend: (any NetBackend)?
    /// The backend's descriptors, one per pair, fetched once (the packet path must not build arrays).
    let descriptors: [FileDescriptor]
    /// Host features from the `-device` properties, before the backend's limits.
    public let hostFeatures: UInt64
    /// Configuration space bytes: mac, status, and max_virtqueue_pairs with MQ. QEMU: config_size.
    let configSize: Int
    let logger: Logger

    /// What the driver and the control queue set. QEMU: VirtIONet's filter and queue fields.
    struct Control {
        var status: UInt16 = VirtIONet.statusLinkUp
        var mac: MACAddress
        var promisc = true, allMulti = false, allUni = false, noMulti = false, noUni = false, noBroadcast = false
        var macTable: [MACAddress] = []
        var firstMulti = 0
        var uniOverflow = false, multiOverflow = false
        var vlans = [UInt32](repeating: 0, count: VirtIONetControl.maxVLAN >> 5)
        var currentPairs = 1
        var multiqueue = false
        var mergeable = false
        var negotiated: UInt64 = 0
        var guestOffloads: UInt64 = 0
    }

    /// One queue pair's backend state and reusable buffers (the device lock serializes turns;
    /// the mutex documents ownership).
    struct Pair {
        var rxBuffer: [UInt8]
        /// Bytes of a frame read from the backend and not yet placed (0: none).
        var pending = 0
        var txBuffer: [UInt8]
        /// A transmit chain whose frame the backend would not take yet (EAGAIN): its head and length.
        var txPending: (head: UInt16, length: Int)?
        var chain = DescriptorChain.reusable()
        var rxChains: [DescriptorChain] = [DescriptorChain.reusable()]
        var lengths: [UInt32] = [0]
        var watch: IOThread.Watch?
        var readPolling = false
        var writePolling = false
    }

    /// The configuration's status bits: VIRTIO_NET_S_LINK_UP, VIRTIO_NET_S_ANNOUNCE.
    static let statusLinkUp = UInt16(VIRTIO_NET_S_LINK_UP), statusAnnounce = UInt16(VIRTIO_NET_S_ANNOUNCE)

    let control: Mutex<Control>
    let pairs: [PairSlot]
    private let transportBox = Mutex<WeakTransport>(WeakTransport())
    let guestErrors = RateLimitedLog()
    /// Counters for tests, benchmarks and the monitor.
    public let counters = Counters()

    /// Frame counts since the device was created, read without locks.
    public final class Counters: Sendable {
        let rx = Atomic<UInt64>(0), rxDropped = Atomic<UInt64>(0), tx = Atomic<UInt64>(0), txDropped = Atomic<UInt64>(0)
        let rxStalls = Atomic<UInt64>(0)
        /// Frames given to the guest.
        public var received: UInt64 { rx.load(ordering: .relaxed) }
        /// Frames read from the backend and dropped (filtered, too large for a chain).
        public var receiveDropped: UInt64 { rxDropped.load(ordering: .relaxed) }
        /// Frames the guest sent that the backend took.
        public var transmitted: UInt64 { tx.load(ordering: .relaxed) }
        /// Transmit chains completed without sending (no backend, too large, backend error).
        public var transmitDropped: UInt64 { txDropped.load(ordering: .relaxed) }
        /// Times receive stopped polling the backend for want of guest buffers.
        public var receiveStalls: UInt64 { rxStalls.load(ordering: .relaxed) }
    }

    /// - Parameters:
    ///   - mac: the NIC's address (QEMU's default 52:54:00:12:34:56 + n when unset).
    ///   - backend: the tap; nil for a NIC without a peer (frames sent are dropped).
    ///   - features: the host features the properties leave on (`VirtIONetFeature.qemuDefaults`,
    ///     `mq` added with `mq=on`).
    ///   - queuePairs: the backend's queue count (`-netdev tap,queues=`), 1...31.
    ///   - rxQueueSize, txQueueSize: QEMU's `rx_queue_size`/`tx_queue_size`, powers of two from 256 to 1024.
    public init(mac: MACAddress, backend: (any NetBackend)?, features: UInt64 = VirtIONetFeature.qemuDefaults,
                queuePairs: Int = 1, rxQueueSize: UInt16 = VirtIONet.dataQueueSize, txQueueSize: UInt16 = VirtIONet.dataQueueSize,
                logger: Logger = Logger(label: "vmm.virtio-net")) throws(VirtIOError) {
        for (name, size) in [("rx_queue_size", rxQueueSize), ("tx_queue_size", txQueueSize)]
        where size < 256 || size > 1024 || size & (size - 1) != 0 {
            throw VirtIOError("Invalid \(name) (= \(size)), must be a power of 2 between 256 and 1024\(name == "rx_queue_size" ? "." : "")")
        }
        self.rxQueueSize = rxQueueSize
        self.txQueueSize = txQueueSize
        guard (1...Self.maxQueuePairs).contains(queuePairs) else {
            throw VirtIOError("Invalid number of queue pairs (= \(queuePairs)), must be a positive integer less than \(Self.maxQueuePairs + 1) here")
        }
        if let backend, backend.queueDescriptors.count < queuePairs {
            throw VirtIOError("\(backend) has \(backend.queueDescriptors.count) queues for \(queuePairs) queue pairs")
        }
        self.mac = mac
        self.backend = backend
        descriptors = backend.map { Array($0.queueDescriptors.prefix(queuePairs)) } ?? []
        maxPairs = queuePairs
        hostFeatures = features | VirtIONetFeature.mac
        self.logger = logger
        // Up to max_virtqueue_pairs with MQ, up to status with STATUS, else the MAC alone.
        // QEMU: virtio_net_get_config_size() over feature_sizes.
        configSize = features & VirtIONetFeature.mq != 0 ? CVIRTIO_NET_CFG_MTU
            : features & VirtIONetFeature.status != 0 ? CVIRTIO_NET_CFG_MAX_VQ_PAIRS : CVIRTIO_NET_CFG_STATUS
        control = Mutex(Control(mac: mac))
        pairs = (0..<queuePairs).map { _ in
            PairSlot(Pair(rxBuffer: [UInt8](repeating: 0, count: Self.frameBufferSize),
                          txBuffer: [UInt8](repeating: 0, count: Self.frameBufferSize)))
        }
    }

    // MARK: VirtIODevice

    /// VIRTIO_ID_NET.
    public var deviceType: UInt16 { UInt16(VIRTIO_ID_NET) }
    /// PCI_CLASS_NETWORK_ETHERNET.
    public var pciClassCode: UInt32 { 0x02_00_00 }

    /// The host features the backend can honour. QEMU: virtio_net_get_features().
    public var features: UInt64 {
        var f = hostFeatures
        if backend?.vnetHeader != true {
            f &= ~(VirtIONetFeature.csum | VirtIONetFeature.hostTSO4 | VirtIONetFeature.hostTSO6 | VirtIONetFeature.hostECN
                   | VirtIONetFeature.guestCsum | VirtIONetFeature.guestTSO4 | VirtIONetFeature.guestTSO6 | VirtIONetFeature.guestECN)
        }
        if backend?.vnetHeader != true || backend?.hasUFO != true {
            f &= ~(VirtIONetFeature.guestUFO | VirtIONetFeature.hostUFO)
        }
        return f
    }

    /// Receive/transmit pairs (2i, 2i+1) for every pair, then the control queue. QEMU:
    /// virtio_net_device_realize() → virtio_net_add_queue().
    public var queueSizes: [UInt16] {
        (0..<2 * maxPairs).map { $0 % 2 == 0 ? rxQueueSize : txQueueSize } + [Self.controlQueueSize]
    }

    /// Registers each pair's backend descriptor on the transport's I/O thread (not polled until the
    /// driver runs) and attaches only the first tap queue.
    public func attach(_ transport: any VirtIOTransport) throws {
        transportBox.withLock { $0.transport = transport }
        guard let backend else { return }
        for (p, fd) in descriptors.enumerated() {
            let watch = try transport.ioThread.watch(fd, events: []) { [weak self] events in
                self?.backendReady(pair: p, events) ?? .idle
            }
            pairs[p].withLock { $0.watch = watch }
        }
        for p in 0..<maxPairs { backend.setQueueEnabled(p, p == 0) }
    }

    var transport: (any VirtIOTransport)? { transportBox.withLock { $0.transport } }

    /// struct virtio_net_config: mac, status, max_virtqueue_pairs (offsets from
    /// <linux/virtio_net.h>); beyond the configuration size every byte reads 0xff.
    /// QEMU: virtio_net_get_config() + virtio_config_modern_read*().
    public func readConfig(offset: UInt64, size: Int) -> UInt64 {
        guard size >= 1, size <= 8, offset <= UInt64(configSize), UInt64(size) <= UInt64(configSize) - offset else {
            return size >= 8 ? UInt64.max : (UInt64(1) << (8 * UInt64(max(size, 0)))) &- 1
        }
        let (m, status) = control.withLock { ($0.mac.array, $0.status) }
        var config = [UInt8](repeating: 0, count: CVIRTIO_NET_CFG_MTU)
        for (i, byte) in m.enumerated() { config[CVIRTIO_NET_CFG_MAC + i] = byte }
        config[CVIRTIO_NET_CFG_STATUS] = UInt8(truncatingIfNeeded: status)
        config[CVIRTIO_NET_CFG_STATUS + 1] = UInt8(truncatingIfNeeded: status >> 8)
        config[CVIRTIO_NET_CFG_MAX_VQ_PAIRS] = UInt8(truncatingIfNeeded: maxPairs)
        config[CVIRTIO_NET_CFG_MAX_VQ_PAIRS + 1] = UInt8(truncatingIfNeeded: maxPairs >> 8)
        var v: UInt64 = 0
        for i in 0..<size { v |= UInt64(config[Int(offset) + i]) << (8 * UInt64(i)) }
        return v
    }

    /// The MAC is writable only for legacy drivers without CTRL_MAC_ADDR; a virtio 1.x driver's
    /// writes are ignored. QEMU: virtio_net_set_config().
    public func writeConfig(offset: UInt64, value: UInt64, size: Int) {}

    /// QEMU: virtio_net_set_features() — queue layout, mergeable buffers, receive offloads,
    /// the VLAN filter's start state.
    public func featuresNegotiated(_ features: UInt64) {
        let (changed, offloads) = control.withLock { c -> (Bool, UInt64?) in
            let mq = features & VirtIONetFeature.mq != 0
            let changed = c.multiqueue != mq || c.negotiated != features
            c.negotiated = features
            c.multiqueue = mq
            c.mergeable = features & VirtIONetFeature.mrgRxBuf != 0
            if changed {
                c.vlans = [UInt32](repeating: features & VirtIONetFeature.ctrlVLAN != 0 ? 0 : 0xffff_ffff,
                                   count: VirtIONetControl.maxVLAN >> 5)
            }
            guard backend?.vnetHeader == true else { return (changed, nil) }
            c.guestOffloads = features & VirtIONetFeature.guestOffloads
            return (changed, c.guestOffloads)
        }
        if let offloads { applyOffloads(offloads) }
        if changed { applyQueuePairs() }
    }

    /// QEMU: virtio_net_set_status() — start (or stop) polling the backend for the active pairs.
    public func statusChanged(_ status: UInt8) {
        let running = status & UInt8(VIRTIO_CONFIG_S_DRIVER_OK) != 0
        let active = control.withLock { $0.multiqueue ? $0.currentPairs : 1 }
        for p in 0..<maxPairs { setReadPolling(p, running && p < active) }
    }

    /// QEMU: virtio_net_reset() — filters back to promiscuous, one queue pair, no announce,
    /// the configured MAC; frames held for the guest and transmits waiting on the backend are
    /// dropped (flush_or_purge_queued_packets).
    public func reset() {
        control.withLock { c in
            let status = c.status & ~Self.statusAnnounce
            c = Control(mac: mac)
            c.status = status
        }
        for (p, pair) in pairs.enumerated() {
            pair.withLock { s in
                s.pending = 0
                s.txPending = nil
            }
            setReadPolling(p, false)
            setWritePolling(p, false)
        }
        applyQueuePairs()
    }

    // MARK: Queues

    enum Role: Equatable { case receive(Int), transmit(Int), control, none }

    /// What queue `index` is under the negotiated layout. QEMU: virtio_net_change_num_queue_pairs().
    func role(_ index: Int) -> Role {
        let pairs = control.withLock { $0.multiqueue } ? maxPairs : 1
        if index < 2 * pairs { return index % 2 == 0 ? .receive(index / 2) : .transmit(index / 2) }
        return index == 2 * pairs ? .control : .none
    }

    /// Serves queue `index` by its role: receive, transmit or control. QEMU:
    /// virtio_net_handle_rx(), virtio_net_handle_tx_bh(), virtio_net_handle_ctrl().
    public func process(queue index: Int, _ queue: VirtQueue, memory: GuestMemory,
                        budget: inout VirtQueueBudget) throws(VirtQueueError) -> VirtQueueProgress {
        switch role(index) {
        case .receive(let p): return try receive(pair: p, queue, memory, &budget)
        case .transmit(let p): return try transmit(pair: p, queue, memory, &budget)
        case .control: return try controlQueue(queue, memory, &budget)
        case .none: return VirtQueueProgress()
        }
    }

    /// The backend descriptor of `pair` is ready: readable → a receive turn; writable → the
    /// transmit queue gets a turn to retry the frame that was refused.
    private func backendReady(pair p: Int, _ events: IOThread.Events) -> IOThread.Next {
        guard let transport else { return .idle }
        if events.contains(.writable) {
            setWritePolling(p, false)
            _ = transport.serve(queue: 2 * p + 1)
        }
        guard events.isEmpty || !events.subtracting(.writable).isEmpty else { return .idle }
        // Not ready (driver not running, queue not enabled, device broken): stop polling until
        // the driver starts the device or kicks the queue.
        guard let next = transport.serve(queue: 2 * p) else {
            setReadPolling(p, false)
            return .idle
        }
        return next
    }

    func setReadPolling(_ p: Int, _ on: Bool) {
        guard pairs.indices.contains(p), let transport else { return }
        pairs[p].withLock { s in
            guard s.readPolling != on, let watch = s.watch else { return }
            s.readPolling = on
            try? transport.ioThread.setEvents(watch, Self.events(s))
        }
    }

    func setWritePolling(_ p: Int, _ on: Bool) {
        guard pairs.indices.contains(p), let transport else { return }
        pairs[p].withLock { s in
            guard s.writePolling != on, let watch = s.watch else { return }
            s.writePolling = on
            try? transport.ioThread.setEvents(watch, Self.events(s))
        }
    }

    private static func events(_ s: Pair) -> IOThread.Events {
        var e: IOThread.Events = []
        if s.readPolling { e.insert(.readable) }
        if s.writePolling { e.insert(.writable) }
        return e
    }

    /// TUNSETOFFLOAD from the receive offloads in force. QEMU: virtio_net_apply_guest_offloads().
    func applyOffloads(_ offloads: UInt64) {
        backend?.setOffload(checksum: offloads & VirtIONetFeature.guestCsum != 0, tso4: offloads & VirtIONetFeature.guestTSO4 != 0,
                            tso6: offloads & VirtIONetFeature.guestTSO6 != 0, ecn: offloads & VirtIONetFeature.guestECN != 0,
                            ufo: offloads & VirtIONetFeature.guestUFO != 0)
    }

    /// Attaches the backend queues of the active pairs, detaches the others, and stops polling
    /// the inactive ones. QEMU: virtio_net_set_queue_pairs() (peer_attach/peer_detach).
    func applyQueuePairs() {
        let active = control.withLock { $0.multiqueue ? $0.currentPairs : 1 }
        for p in 0..<maxPairs {
            if maxPairs > 1 { backend?.setQueueEnabled(p, p < active) }
            if p >= active { setReadPolling(p, false) }
        }
    }

    // MARK: Link status and announce (for the monitor / QMP)

    /// Sets the link state; a change is reported to the driver with a config interrupt.
    /// QEMU: virtio_net_set_link_status() (QMP set_link).
    public func setLink(up: Bool) {
        let changed = control.withLock { c -> Bool in
            let old = c.status
            c.status = up ? c.status | Self.statusLinkUp : c.status & ~Self.statusLinkUp
            return old != c.status
        }
        if changed { transport?.notifyConfigChange() }
    }

    /// Asks the guest to announce itself (gratuitous ARP after a move) when it negotiated
    /// GUEST_ANNOUNCE and CTRL_VQ; it acknowledges with VIRTIO_NET_CTRL_ANNOUNCE_ACK. Returns
    /// whether the request was made. QEMU: virtio_net_announce() (QMP announce-self).
    @discardableResult
    public func announce() -> Bool {
        let asked = control.withLock { c -> Bool in
            guard c.negotiated & VirtIONetFeature.guestAnnounce != 0, c.negotiated & VirtIONetFeature.ctrlVQ != 0 else { return false }
            c.status |= Self.statusAnnounce
            return true
        }
        if asked { transport?.notifyConfigChange() }
        return asked
    }

    /// Whether pair `p`'s backend descriptor is polled for input now (false while the guest
    /// has no buffers for it).
    public func isPollingBackend(pair p: Int) -> Bool { pairs.indices.contains(p) && pairs[p].withLock { $0.readPolling } }
    /// Whether pair `p` holds a frame read from the backend and not yet placed.
    public func holdsFrame(pair p: Int) -> Bool { pairs.indices.contains(p) && pairs[p].withLock { $0.pending > 0 } }

    /// The link/announce status word.
    public var status: UInt16 { control.withLock { $0.status } }
    /// Queue pairs in use.
    public var currentQueuePairs: Int { control.withLock { $0.multiqueue ? $0.currentPairs : 1 } }
    /// The MAC the driver set last (or the configured one).
    public var currentMAC: MACAddress { control.withLock { $0.mac } }

    /// A guest-provoked event worth a (rate-limited) log line.
    func guestError(_ message: @autoclosure () -> String) {
        guestErrors.log({ logger.warning("\($0)") }, message: message)
    }
}

/// One queue pair's state behind its lock (a class: `Mutex` cannot live in an array).
final class PairSlot: Sendable {
    private let state: Mutex<VirtIONet.Pair>
    init(_ pair: VirtIONet.Pair) { state = Mutex(pair) }
    func withLock<R, E: Error>(_ body: (inout VirtIONet.Pair) throws(E) -> R) throws(E) -> R {
        try state.withLock { (p: inout VirtIONet.Pair) throws(E) -> R in try body(&p) }
    }
}

/// The transport, weakly: it owns the device.
struct WeakTransport: @unchecked Sendable {
    weak var transport: (any VirtIOTransport)?
}
