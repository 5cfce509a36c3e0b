import Memory
import Synchronization

/// Why a virtqueue cannot be used; the device stops serving the queue (the guest sees no
/// progress) and logs this, rather than trusting a bad index or address.
public enum VirtQueueError: Error, Equatable, CustomStringConvertible {
    case guestMemory(String)
    case availIndexJump(lastSeen: UInt16, published: UInt16, size: UInt16)
    case descriptorIndex(UInt16, size: UInt16)
    case chainTooLong(head: UInt16)
    case badIndirect(head: UInt16)

    public var description: String {
        switch self {
        case .guestMemory(let e): return "virtqueue: \(e)"
        case .availIndexJump(let l, let p, let n): return "virtqueue: avail idx jumped from \(l) to \(p) (size \(n))"
        case .descriptorIndex(let i, let n): return "virtqueue: descriptor index \(i) outside the table (size \(n))"
        case .chainTooLong(let h): return "virtqueue: descriptor chain from \(h) loops or exceeds the queue size"
        case .badIndirect(let h): return "virtqueue: bad indirect descriptor table in chain \(h)"
        }
    }
}

/// One guest buffer of a descriptor chain.
public struct VirtQueueBuffer: Sendable, Equatable {
    public var address: UInt64
    public var length: UInt32
    /// Device-writable (VIRTQ_DESC_F_WRITE); otherwise device-readable.
    public var writable: Bool
}

/// A chain taken from the available ring: its head (to return in the used ring) and buffers.
public struct DescriptorChain: Sendable, Equatable {
    public var head: UInt16
    public var buffers: [VirtQueueBuffer]
}

/// A split virtqueue in guest memory (virtio 1.x §2.7), read and written only through the
/// bounds-checked `GuestMemory`. Every index the guest publishes is checked before use.
/// QEMU: `VirtQueue` (hw/virtio/virtio.c); rust-vmm: virtio-queue.
public final class VirtQueue: Sendable {
    public static let maxSize: UInt16 = 32768
    static let descNext: UInt16 = 1, descWrite: UInt16 = 2, descIndirect: UInt16 = 4
    static let availNoInterrupt: UInt16 = 1

    struct Layout: Sendable {
        var size: UInt16 = 0
        var desc: UInt64 = 0
        var avail: UInt64 = 0
        var used: UInt64 = 0
        var ready = false
        /// VIRTIO_F_EVENT_IDX negotiated: used_event/avail_event suppress interrupts/kicks.
        var eventIdx = false
    }

    private let state = Mutex<(layout: Layout, lastAvail: UInt16, usedIdx: UInt16)>((Layout(), 0, 0))
    /// The largest size the device offers.
    public let maxSize: UInt16

    public init(maxSize: UInt16) { self.maxSize = maxSize }

    /// Configures the rings (the driver's queue_size/desc/driver/device writes) and enables it.
    public func configure(size: UInt16, desc: UInt64, avail: UInt64, used: UInt64, eventIdx: Bool = false) {
        state.withLock { s in
            s.layout = Layout(size: size, desc: desc, avail: avail, used: used, ready: true, eventIdx: eventIdx)
            s.lastAvail = 0
            s.usedIdx = 0
        }
    }

    /// Forgets the rings (device reset).
    public func reset() { state.withLock { $0 = (Layout(), 0, 0) } }

    public var isReady: Bool { state.withLock { $0.layout.ready && $0.layout.size > 0 } }

    /// Whether `size` is acceptable: a power of two from 1 to `maxSize`.
    public func accepts(size: UInt16) -> Bool { size > 0 && size <= maxSize && size & (size - 1) == 0 }

    /// Takes the next available chain, or nil when the driver published nothing new.
    public func pop(_ memory: GuestMemory) throws(VirtQueueError) -> DescriptorChain? {
        let (layout, last) = state.withLock { ($0.layout, $0.lastAvail) }
        guard layout.ready, layout.size > 0 else { return nil }
        if layout.eventIdx {
            // avail_event: "kick me for anything after what I have taken", published before the
            // index is read so a driver adding an entry meanwhile still kicks. (§2.7.10)
            try store(last, memory, layout.used + 4 + 8 * UInt64(layout.size))
            atomicMemoryFence(ordering: .sequentiallyConsistent)
        }
        let published = try load(UInt16.self, memory, layout.avail + 2)
        guard published != last else { return nil }
        guard published &- last <= layout.size else {
            throw .availIndexJump(lastSeen: last, published: published, size: layout.size)
        }
        // The ring entry is read after the index (x86 keeps loads in order; the fence documents it).
        atomicMemoryFence(ordering: .acquiring)
        let head = try load(UInt16.self, memory, layout.avail + 4 + 2 * UInt64(last % layout.size))
        let chain = try walk(head: head, layout: layout, memory: memory)
        state.withLock { $0.lastAvail = last &+ 1 }
        return chain
    }

    private func walk(head: UInt16, layout: Layout, memory: GuestMemory) throws(VirtQueueError) -> DescriptorChain {
        var buffers: [VirtQueueBuffer] = []
        var index = head
        var steps = 0
        var table = layout.desc
        var tableSize = layout.size
        var indirect = false
        while true {
            guard index < tableSize else { throw .descriptorIndex(index, size: tableSize) }
            steps += 1
            guard steps <= Int(tableSize) + Int(layout.size) else { throw .chainTooLong(head: head) }
            let at = table + 16 * UInt64(index)
            let addr = try load(UInt64.self, memory, at)
            let len = try load(UInt32.self, memory, at + 8)
            let flags = try load(UInt16.self, memory, at + 12)
            let next = try load(UInt16.self, memory, at + 14)
            if flags & Self.descIndirect != 0 {
                // One level of indirection: the buffer is a descriptor table of its own.
                guard !indirect, len % 16 == 0, len > 0, len / 16 <= UInt32(Self.maxSize) else { throw .badIndirect(head: head) }
                indirect = true
                table = addr
                tableSize = UInt16(len / 16)
                index = 0
                steps = 0
                continue
            }
            buffers.append(VirtQueueBuffer(address: addr, length: len, writable: flags & Self.descWrite != 0))
            guard flags & Self.descNext != 0 else { break }
            index = next
        }
        return DescriptorChain(head: head, buffers: buffers)
    }

    /// Returns a chain to the driver with `length` bytes written; tells whether the driver
    /// wants an interrupt for it (VIRTQ_AVAIL_F_NO_INTERRUPT clear).
    public func push(head: UInt16, length: UInt32, _ memory: GuestMemory) throws(VirtQueueError) -> Bool {
        let (layout, idx) = state.withLock { ($0.layout, $0.usedIdx) }
        guard layout.ready, layout.size > 0 else { return false }
        let entry = layout.used + 4 + 8 * UInt64(idx % layout.size)
        try store(UInt32(head), memory, entry)
        try store(length, memory, entry + 4)
        // The entry must be visible before the index that publishes it.
        atomicMemoryFence(ordering: .releasing)
        try store(idx &+ 1, memory, layout.used + 2)
        state.withLock { $0.usedIdx = idx &+ 1 }
        atomicMemoryFence(ordering: .sequentiallyConsistent)
        if layout.eventIdx {
            // used_event: interrupt only when the used index passes the driver's mark.
            // QEMU: vring_need_event().
            let event = try load(UInt16.self, memory, layout.avail + 4 + 2 * UInt64(layout.size))
            let new = idx &+ 1
            return new &- event &- 1 < new &- idx
        }
        let flags = try load(UInt16.self, memory, layout.avail)
        return flags & Self.availNoInterrupt == 0
    }

    private func load<T: FixedWidthInteger>(_ t: T.Type, _ memory: GuestMemory, _ at: UInt64) throws(VirtQueueError) -> T {
        do { return try memory.load(t, at: at) } catch { throw .guestMemory(error.description) }
    }

    private func store<T: FixedWidthInteger>(_ v: T, _ memory: GuestMemory, _ at: UInt64) throws(VirtQueueError) {
        do { try memory.store(v, at: at) } catch { throw .guestMemory(error.description) }
    }
}
