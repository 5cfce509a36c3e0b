import Memory

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
    func writeConfig(offset: UInt64, value: UInt64, size: Int)
    /// Serves chains available on queue `index`, charging each to `budget` and stopping when it
    /// is exhausted (the transport comes back on the next round). Throws when the queue or a
    /// request is malformed in a way QEMU treats as `virtio_error()`: the transport then marks
    /// the device broken until the driver resets it.
    func process(queue index: Int, _ queue: VirtQueue, memory: GuestMemory,
                 budget: inout VirtQueueBudget) throws(VirtQueueError) -> VirtQueueProgress
    /// Back to the initial state (the driver wrote status 0).
    func reset()
    /// The features the driver accepted (known once it enables a queue).
    func featuresNegotiated(_ features: UInt64)
}

extension VirtIODevice {
    public func featuresNegotiated(_ features: UInt64) {}
    public var pciClassCode: UInt32 { 0x00_ff_00 }
}

/// What one turn on a queue achieved.
public struct VirtQueueProgress: Sendable, Equatable {
    /// Chains were completed that the driver wants an interrupt for.
    public var interrupt = false
    /// The device holds work back until this instant (a rate limit); the transport serves the
    /// queue again then, without a kick.
    public var resumeAt: ContinuousClock.Instant?

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
