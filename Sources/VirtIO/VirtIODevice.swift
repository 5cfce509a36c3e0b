import Memory
import VMMSys

/// What a virtio device type provides; the transport (`VirtIOPCI`) does the rest. Queue work
/// runs on the I/O thread, one budgeted turn at a time. QEMU: `VirtioDeviceClass`.
public protocol VirtIODevice: AnyObject, Sendable {
    /// The virtio device ID (2 = block, 4 = entropy source).
    var deviceType: UInt16 { get }
    /// The PCI class code (class << 16 | subclass << 8 | prog-if) virtio-pci gives the function.
    /// QEMU: the class_code of each virtio-*-pci type (storage/SCSI for block, others "other").
    var pciClassCode: UInt32 { get }
    /// Feature bits beyond the transport's (VERSION_1, INDIRECT_DESC, EVENT_IDX).
    var features: UInt64 { get }
    /// Maximum size of each queue; the count is the number of queues.
    var queueSizes: [UInt16] { get }
    /// Device-specific configuration space.
    func readConfig(offset: UInt64, size: Int) -> UInt64
    /// A driver write of `size` bytes at `offset` in the device-specific configuration space.
    func writeConfig(offset: UInt64, value: UInt64, size: Int)
    /// Serves chains available on queue `index`, charging each to `budget` and stopping when it
    /// is exhausted (the transport comes back on the next round). Throws when the queue or a
    /// request is malformed in a way QEMU treats as `virtio_error()`: the transport then marks
    /// the device broken until the driver resets it.
    func process(queue index: Int, _ queue: VirtQueue, memory: GuestMemory,
                 budget: inout VirtQueueBudget) throws(VirtQueueError) -> VirtQueueProgress
    /// Back to the initial state (the driver wrote status 0).
    func reset()
    /// The features the driver accepted: called when the driver sets FEATURES_OK and again
    /// when it enables a queue. QEMU: VirtioDeviceClass.set_features.
    func featuresNegotiated(_ features: UInt64)
    /// Called once when the transport exists: a device with a backend of its own (a tap, a
    /// chardev) registers its descriptors on `transport.ioThread` and keeps the transport
    /// (weakly: the transport owns the device) to serve queues and raise config interrupts.
    func attach(_ transport: any VirtIOTransport) throws
    /// The driver wrote a non-zero status (reset is `reset()`); called with the device lock
    /// held, after the transport acted on it (ioeventfds started at DRIVER_OK).
    /// QEMU: VirtioDeviceClass.set_status.
    func statusChanged(_ status: UInt8)
}

extension VirtIODevice {
    /// By default nothing depends on the negotiated features.
    public func featuresNegotiated(_ features: UInt64) {}
    /// PCI_CLASS_OTHERS, as QEMU's virtio-rng-pci.
    public var pciClassCode: UInt32 { 0x00_ff_00 }
    /// By default a device has no backend of its own to register.
    public func attach(_ transport: any VirtIOTransport) throws {}
    /// By default a status change needs nothing of the device.
    public func statusChanged(_ status: UInt8) {}
}

/// What a device may ask of its transport beyond answering kicks: work on a queue when its
/// backend (not the driver) has something — a frame arrived on the tap, a byte on a chardev —
/// and configuration-change interrupts. Every call is safe from any thread.
/// QEMU: virtio_notify(), virtio_notify_config(), and running a queue handler outside a kick.
public protocol VirtIOTransport: AnyObject, Sendable {
    /// The I/O thread serving the device's queues.
    var ioThread: IOThread { get }
    /// One turn on queue `index` exactly as a kick gives it: under the device lock, only while
    /// the driver is ready, the device not broken and the queue enabled, interrupting the driver
    /// if the turn asks. nil when not ready (the device was not called).
    func serve(queue index: Int) -> IOThread.Next?
    /// Runs `body` on queue `index` under the device lock, with the same readiness rules as
    /// `serve`; interrupts the driver when `body` says so, and breaks the device (virtio_error)
    /// when it throws. nil when not ready or broken.
    func withQueue<R>(_ index: Int, _ body: (VirtQueue, GuestMemory) throws(VirtQueueError) -> (result: R, interrupt: Bool)) -> R?
    /// Queue `index` itself, for a device that, while serving one queue under the device lock,
    /// must also use another (virtio-serial answers a control message on the control receive
    /// queue). Only touch it under the device lock, and only when it `isReady`.
    func queue(_ index: Int) -> VirtQueue?
    /// Interrupts the driver for queue `index` (MSI-X vector or INTx with ISR bit 0), for
    /// chains a device returned on a queue other than the one it was called for.
    /// QEMU: virtio_notify().
    func notifyQueue(_ index: Int)
    /// Tells the driver the device configuration changed (link status, an announce): bumps the
    /// configuration generation and interrupts on the config vector. Nothing before DRIVER_OK.
    /// QEMU: virtio_notify_config().
    func notifyConfigChange()
}

/// What one turn on a queue achieved.
public struct VirtQueueProgress: Sendable, Equatable {
    /// Chains were completed that the driver wants an interrupt for.
    public var interrupt = false
    /// The device holds work back until this instant (a rate limit); the transport serves the
    /// queue again then, without a kick.
    public var resumeAt: ContinuousClock.Instant?

    /// A turn's outcome: whether to interrupt the driver, and when to come back without a kick.
    public init(interrupt: Bool = false, resumeAt: ContinuousClock.Instant? = nil) {
        self.interrupt = interrupt
        self.resumeAt = resumeAt
    }
}

extension GuestMemory {
    /// Writes a device's bytes into a chain buffer; a buffer outside guest RAM is the guest's
    /// error (QEMU refuses it at pop: "bogus descriptor").
    func write(_ bytes: ArraySlice<UInt8>, into buffer: VirtQueueBuffer) throws(VirtQueueError) {
        do { try write(bytes, at: buffer.address) } catch { throw .bogusBuffer(address: buffer.address, length: buffer.length) }
    }

    /// Reads `count` bytes of a chain buffer.
    func read(_ buffer: VirtQueueBuffer, count: Int) throws(VirtQueueError) -> [UInt8] {
        do { return try read(at: buffer.address, count: count) } catch { throw .bogusBuffer(address: buffer.address, length: buffer.length) }
    }
}
