import Memory

/// What a virtio device type provides; the transport (`VirtIOPCI`) does the rest. Queue work
/// runs on the I/O thread. QEMU: `VirtioDeviceClass`.
public protocol VirtIODevice: AnyObject, Sendable {
    /// The virtio device ID (4 = entropy source).
    var deviceType: UInt16 { get }
    /// Feature bits beyond VIRTIO_F_VERSION_1, which the transport adds.
    var features: UInt64 { get }
    /// Maximum size of each queue; the count is the number of queues.
    var queueSizes: [UInt16] { get }
    /// Device-specific configuration space.
    func readConfig(offset: UInt64, size: Int) -> UInt64
    func writeConfig(offset: UInt64, value: UInt64, size: Int)
    /// Serves the chains available on queue `index`; returns whether the driver should be
    /// interrupted. Throws when the queue is unusable.
    func process(queue index: Int, _ queue: VirtQueue, memory: GuestMemory) throws(VirtQueueError) -> Bool
    /// Back to the initial state (the driver wrote status 0).
    func reset()
    /// The features the driver accepted (known once it enables a queue).
    func featuresNegotiated(_ features: UInt64)
}

extension VirtIODevice {
    public func featuresNegotiated(_ features: UInt64) {}
}

/// The virtio entropy device: fills every device-writable buffer it is given with random
/// bytes. QEMU: virtio-rng (hw/virtio/virtio-rng.c) with the default random backend.
public final class VirtIORNG: VirtIODevice {
    public init() {}
    public var deviceType: UInt16 { 4 }
    public var features: UInt64 { 0 }
    public var queueSizes: [UInt16] { [8] }          // QEMU: virtio_add_queue(vdev, 8, …)
    public func readConfig(offset: UInt64, size: Int) -> UInt64 { 0 }
    public func writeConfig(offset: UInt64, value: UInt64, size: Int) {}
    public func reset() {}

    public func process(queue index: Int, _ queue: VirtQueue, memory: GuestMemory) throws(VirtQueueError) -> Bool {
        var interrupt = false
        var rng = SystemRandomNumberGenerator()
        while let chain = try queue.pop(memory) {
            var written: UInt32 = 0
            for b in chain.buffers where b.writable {
                let n = Int(min(b.length, 65536))        // a guest-given length: capped per buffer
                var bytes = [UInt8](repeating: 0, count: n)
                for i in stride(from: 0, to: n, by: 8) {
                    let r = rng.next()
                    for j in 0..<min(8, n - i) { bytes[i + j] = UInt8(truncatingIfNeeded: r >> (8 * UInt64(j))) }
                }
                do { try memory.write(bytes, at: b.address) } catch { throw .guestMemory(error.description) }
                written &+= UInt32(n)
            }
            if try queue.push(head: chain.head, length: written, memory) { interrupt = true }
        }
        return interrupt
    }
}
