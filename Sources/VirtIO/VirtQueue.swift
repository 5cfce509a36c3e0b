internal import CVirtIO
import Memory
import Synchronization

/// One guest buffer of a descriptor chain. `pop` guarantees `length > 0` and that
/// `address + length` does not pass 2^64.
public struct VirtQueueBuffer: Sendable, Equatable {
    /// Guest-physical address of the buffer.
    public var address: UInt64
    /// Its length in bytes (> 0).
    public var length: UInt32
    /// Device-writable (VIRTQ_DESC_F_WRITE); otherwise device-readable.
    public var writable: Bool
}

/// A chain taken from the available ring: its head (to return in the used ring) and buffers,
/// device-readable ones first (`pop` refuses any other order, as QEMU does).
public struct DescriptorChain: Sendable, Equatable {
    /// The head descriptor index, given back with `push`.
    public var head: UInt16
    /// The buffers in chain order, device-readable first.
    public var buffers: [VirtQueueBuffer]

    /// A chain (the tests' and `reusable`'s way to make one; `pop` fills them).
    public init(head: UInt16 = 0, buffers: [VirtQueueBuffer] = []) {
        self.head = head
        self.buffers = buffers
    }

    /// An empty chain whose buffer list already has room for `capacity` buffers, for
    /// `VirtQueue.pop(_:into:)` to fill again and again without allocating.
    public static func reusable(capacity: Int = 64) -> DescriptorChain {
        var c = DescriptorChain()
        c.buffers.reserveCapacity(capacity)
        return c
    }

    /// How many device-readable buffers lead the chain (they all come first).
    public var readableCount: Int {
        var i = 0
        while i < buffers.count && !buffers[i].writable { i += 1 }     // no closure: the packet path calls this
        return i
    }

    /// Total bytes of the device-readable buffers (at most 1024 × 4 GiB: no overflow).
    public var readableBytes: UInt64 { buffers.reduce(0) { $1.writable ? $0 : $0 + UInt64($1.length) } }
    /// Total bytes of the device-writable buffers.
    public var writableBytes: UInt64 { buffers.reduce(0) { $1.writable ? $0 + UInt64($1.length) : $0 } }
}

/// A split virtqueue in guest memory (virtio 1.x §2.7), read and written only through the
/// bounds-checked `GuestMemory`.
///
/// The contract with a hostile driver:
/// - The rings are checked when the driver enables the queue (`configure`): each must lie in
///   guest RAM, so no ring address near 2^64 is ever used. QEMU: virtio_init_region_cache().
/// - Every address is computed with overflow-reporting arithmetic; every index the driver
///   publishes is range-checked before use; a chain is bounded by the table size (loops) and
///   by `maxChainDescriptors` buffers; buffers are non-empty and do not wrap.
/// - Any violation is a thrown `VirtQueueError`: the transport marks the device broken
///   (QEMU's virtio_error()) and stops using the rings until the driver resets the device.
///
/// Calls are serialized by the transport (the I/O thread pops and pushes; reset and enable
/// take the same device lock), so a reset can never race a pop writing the old rings.
/// QEMU: `VirtQueue` (hw/virtio/virtio.c); rust-vmm: virtio-queue.
public final class VirtQueue: Sendable {
    /// The largest queue size the split ring allows (virtio 1.x §2.7: queue size ≤ 32768).
    public static let maxSize: UInt16 = 32768
    /// At most this many buffers per chain, direct and indirect together.
    /// QEMU: VIRTQUEUE_MAX_SIZE.
    public static let maxChainDescriptors = 1024
    /// Descriptor flags: VRING_DESC_F_NEXT, VRING_DESC_F_WRITE, VRING_DESC_F_INDIRECT.
    static let descNext = UInt16(VRING_DESC_F_NEXT), descWrite = UInt16(VRING_DESC_F_WRITE)
    static let descIndirect = UInt16(VRING_DESC_F_INDIRECT)
    /// VRING_AVAIL_F_NO_INTERRUPT: the driver wants no interrupt (without EVENT_IDX).
    static let availNoInterrupt = UInt16(VRING_AVAIL_F_NO_INTERRUPT)
    /// VRING_USED_F_NO_NOTIFY: the device wants no kick (without EVENT_IDX).
    static let usedNoNotify = UInt16(VRING_USED_F_NO_NOTIFY)
    /// Bytes of one struct vring_desc, and where its len, flags and next fields lie: flags and
    /// next as bit shifts within the 8 bytes that start at len.
    static let descriptorSize = UInt64(CVIRTIO_DESC_SIZE), descLength = UInt64(CVIRTIO_DESC_LEN)
    static let descFlagsShift = UInt64(8 * (CVIRTIO_DESC_FLAGS - CVIRTIO_DESC_LEN))
    static let descNextShift = UInt64(8 * (CVIRTIO_DESC_NEXT - CVIRTIO_DESC_LEN))
    /// Offsets in the available ring (struct vring_avail): flags, idx, ring[]; each entry, and
    /// used_event after the last, is one 16-bit value.
    static let availFlags = UInt64(CVIRTIO_AVAIL_FLAGS), availIndex = UInt64(CVIRTIO_AVAIL_IDX)
    static let availRing = UInt64(CVIRTIO_AVAIL_RING), availEntrySize = UInt64(CVIRTIO_AVAIL_ELEM_SIZE)
    /// Offsets in the used ring (struct vring_used): flags, idx, ring[] of struct
    /// vring_used_elem {id, len}; avail_event follows the last entry.
    static let usedFlags = UInt64(CVIRTIO_USED_FLAGS), usedIndex = UInt64(CVIRTIO_USED_IDX)
    static let usedRing = UInt64(CVIRTIO_USED_RING), usedEntrySize = UInt64(CVIRTIO_USED_ELEM_SIZE)
    static let usedEntryLength = UInt64(CVIRTIO_USED_ELEM_LEN)
    /// used_event / avail_event: one 16-bit index.
    static let eventSize = UInt64(CVIRTIO_EVENT_SIZE)

    struct Layout: Sendable {
        var size: UInt16 = 0
        var desc: UInt64 = 0
        var avail: UInt64 = 0
        var used: UInt64 = 0
        var ready = false
        /// VIRTIO_F_EVENT_IDX negotiated: used_event/avail_event suppress interrupts/kicks.
        var eventIdx = false
    }

    private struct State {
        var layout = Layout()
        var lastAvail: UInt16 = 0
        var usedIdx: UInt16 = 0
        /// The device wants kicks (`setNotification`).
        var notification = true
        /// Chains taken and not yet returned. QEMU: VirtQueue.inuse.
        var inUse = 0
    }

    private let state = Mutex(State())
    /// The largest size the device offers.
    public let maxSize: UInt16

    /// A queue offering at most `maxSize` entries, not yet configured.
    public init(maxSize: UInt16) { self.maxSize = maxSize }

    /// Bytes of each ring for `size` entries, with the EVENT_IDX trailer (virtio 1.x §2.7).
    static func ringSizes(_ size: UInt16) -> (desc: UInt64, avail: UInt64, used: UInt64) {
        let n = UInt64(size)
        return (descriptorSize * n, availRing + availEntrySize * n + eventSize, usedRing + usedEntrySize * n + eventSize)
    }

    /// Where used_event lies: after the available ring's `size` entries.
    static func usedEvent(_ layout: Layout) -> UInt64 { availRing + availEntrySize * UInt64(layout.size) }
    /// Where avail_event lies: after the used ring's `size` entries.
    static func availEvent(_ layout: Layout) -> UInt64 { usedRing + usedEntrySize * UInt64(layout.size) }

    /// Configures the rings (the driver's queue_size/desc/driver/device writes) and enables the
    /// queue, after checking that each ring lies entirely in guest RAM (`memory`). A refused
    /// layout leaves the queue disabled. QEMU: virtio_queue_set_rings() →
    /// virtio_init_region_cache().
    public func configure(size: UInt16, desc: UInt64, avail: UInt64, used: UInt64, eventIdx: Bool = false,
                          memory: GuestMemory) throws(VirtQueueError) {
        reset()
        guard accepts(size: size) || size == 0 else { throw .cannotMap(ring: "desc", address: desc, size: 0) }
        let sizes = Self.ringSizes(size)
        for (ring, address, bytes) in [("desc", desc, sizes.desc), ("used", used, sizes.used), ("avail", avail, sizes.avail)] {
            guard (try? memory.read(at: address, count: Int(bytes))) != nil else {
                throw .cannotMap(ring: ring, address: address, size: bytes)
            }
        }
        state.withLock { s in
            s = State(layout: Layout(size: size, desc: desc, avail: avail, used: used, ready: true, eventIdx: eventIdx))
        }
    }

    /// Forgets the rings (device reset).
    public func reset() { state.withLock { $0 = State() } }

    /// Whether the driver enabled the queue with a non-zero size (rings checked).
    public var isReady: Bool { state.withLock { $0.layout.ready && $0.layout.size > 0 } }

    /// Whether `size` is acceptable: a power of two from 1 to `maxSize`.
    public func accepts(size: UInt16) -> Bool { size > 0 && size <= maxSize && size & (size &- 1) == 0 }

    /// Whether the driver has published chains not yet taken (a cheap look, for rescheduling).
    public func hasAvailable(_ memory: GuestMemory) -> Bool {
        let (layout, last) = state.withLock { ($0.layout, $0.lastAvail) }
        guard layout.ready, layout.size > 0, let at = try? Self.offset(layout.avail, Self.availIndex) else { return false }
        return memory.loadDirect(UInt16.self, at: at).map { $0 != last } ?? false
    }

    /// Takes the next available chain, or nil when the driver published nothing new.
    /// QEMU: virtqueue_split_pop().
    public func pop(_ memory: GuestMemory) throws(VirtQueueError) -> DescriptorChain? {
        var chain = DescriptorChain()
        return try pop(memory, into: &chain) ? chain : nil
    }

    /// Takes the next available chain into `chain` (its buffer list is reused, so a chain kept
    /// by the caller makes the packet path allocation-free); false when the driver published
    /// nothing new (`chain` is then emptied). QEMU: virtqueue_split_pop().
    public func pop(_ memory: GuestMemory, into chain: inout DescriptorChain) throws(VirtQueueError) -> Bool {
        chain.buffers.removeAll(keepingCapacity: true)
        let (layout, last, inUse) = state.withLock { ($0.layout, $0.lastAvail, $0.inUse) }
        guard layout.ready, layout.size > 0 else { return false }
        if layout.eventIdx {
            // avail_event: "kick me for anything after what I have taken", published before the
            // index is read so a driver adding an entry meanwhile still kicks. (§2.7.10)
            try store(last, memory, try Self.offset(layout.used, Self.availEvent(layout)))
            atomicMemoryFence(ordering: .sequentiallyConsistent)
        }
        let published = try load(UInt16.self, memory, try Self.offset(layout.avail, Self.availIndex))
        guard published != last else { return false }
        guard published &- last <= layout.size else {
            throw .availIndexJump(lastSeen: last, published: published, size: layout.size)
        }
        // More chains taken and not returned than the queue holds: the driver published heads
        // twice. QEMU: virtqueue_split_pop() "Virtqueue size exceeded".
        guard inUse < Int(layout.size) else { throw .sizeExceeded(size: layout.size) }
        // The ring entry is read after the index (x86 keeps loads in order; the fence documents it).
        atomicMemoryFence(ordering: .acquiring)
        let head = try load(UInt16.self, memory, try Self.offset(layout.avail, Self.availRing + Self.availEntrySize * UInt64(last % layout.size)))
        chain.head = head
        try walk(head: head, layout: layout, memory: memory) { (buffer: VirtQueueBuffer) throws(VirtQueueError) in
            chain.buffers.append(buffer)
        }
        state.withLock {
            $0.lastAvail = last &+ 1
            $0.inUse += 1
        }
        return true
    }

    /// Gives back the last `count` chains taken, so they are popped again (their buffers
    /// untouched). QEMU: virtqueue_unpop() / virtqueue_rewind().
    public func unpop(_ count: UInt16 = 1) {
        state.withLock {
            $0.lastAvail &-= count
            $0.inUse = max(0, $0.inUse - Int(count))
        }
    }

    /// Whether the driver has published no chain that is not yet taken (a queue that is not
    /// ready counts as empty). QEMU: virtio_queue_empty().
    public func isEmpty(_ memory: GuestMemory) throws(VirtQueueError) -> Bool {
        let (layout, last) = state.withLock { ($0.layout, $0.lastAvail) }
        guard layout.ready, layout.size > 0 else { return true }
        return try load(UInt16.self, memory, try Self.offset(layout.avail, Self.availIndex)) == last
    }

    /// Device-writable bytes in the available chains not yet taken, counted until `limit` is
    /// reached (a chain is counted whole), without taking any. Malformed chains throw as `pop`
    /// would. Bounded: at most the queue's size chains, each of at most `maxChainDescriptors`
    /// buffers. QEMU: virtqueue_get_avail_bytes() (the in_bytes half).
    public func availableWritableBytes(upTo limit: UInt64, _ memory: GuestMemory) throws(VirtQueueError) -> UInt64 {
        let (layout, last) = state.withLock { ($0.layout, $0.lastAvail) }
        guard layout.ready, layout.size > 0 else { return 0 }
        let published = try load(UInt16.self, memory, try Self.offset(layout.avail, Self.availIndex))
        guard published &- last <= layout.size else {
            throw .availIndexJump(lastSeen: last, published: published, size: layout.size)
        }
        atomicMemoryFence(ordering: .acquiring)
        var total: UInt64 = 0
        var index = last
        while index != published && total < limit {
            let head = try load(UInt16.self, memory, try Self.offset(layout.avail, Self.availRing + Self.availEntrySize * UInt64(index % layout.size)))
            try walk(head: head, layout: layout, memory: memory) { (buffer: VirtQueueBuffer) throws(VirtQueueError) in
                if buffer.writable { total &+= UInt64(buffer.length) }     // ≤ 1024 × 4 GiB per chain
            }
            index &+= 1
        }
        return total
    }

    /// Whether the device wants kicks for this queue: without EVENT_IDX the VRING_USED_F_NO_NOTIFY
    /// flag, with it the avail_event index (published as the current avail index). A device
    /// turns kicks off while it polls a queue itself (a transmit burst, a receive queue that has
    /// buffers) and back on — then checks the queue once more — before it sleeps.
    /// QEMU: virtio_queue_set_notification() (virtio_queue_split_set_notification).
    public func setNotification(_ enabled: Bool, _ memory: GuestMemory) throws(VirtQueueError) {
        let layout = state.withLock { s -> Layout in
            s.notification = enabled
            return s.layout
        }
        guard layout.ready, layout.size > 0 else { return }
        if layout.eventIdx {
            let published = try load(UInt16.self, memory, try Self.offset(layout.avail, Self.availIndex))
            try store(published, memory, try Self.offset(layout.used, Self.availEvent(layout)))
        } else {
            let flags = try load(UInt16.self, memory, try Self.offset(layout.used, Self.usedFlags))
            try store(enabled ? flags & ~Self.usedNoNotify : flags | Self.usedNoNotify, memory, try Self.offset(layout.used, Self.usedFlags))
        }
        if enabled { atomicMemoryFence(ordering: .sequentiallyConsistent) }
    }

    /// Follows one chain, calling `visit` for each buffer in order. Only the head may point to
    /// an indirect table (QEMU reads the INDIRECT flag of the head alone); within a table,
    /// `next` indexes that table.
    private func walk(head: UInt16, layout: Layout, memory: GuestMemory,
                      _ visit: (VirtQueueBuffer) throws(VirtQueueError) -> Void) throws(VirtQueueError) {
        guard head < layout.size else { throw .descriptorIndex(head, size: layout.size) }
        var table = layout.desc
        var tableSize = UInt32(layout.size)
        var descriptor = try readDescriptor(table, UInt32(head), memory)
        if descriptor.flags & Self.descIndirect != 0 {
            // The table itself is checked entry by entry as the chain reads it (a table outside
            // RAM fails on its first read), so a 4 GiB table costs nothing up front.
            let len = descriptor.length
            guard len > 0, UInt64(len) % Self.descriptorSize == 0, UInt64(len - 1) <= UInt64.max - descriptor.address else {
                throw .badIndirect(head: head)
            }
            table = descriptor.address
            tableSize = UInt32(UInt64(len) / Self.descriptorSize)
            descriptor = try readDescriptor(table, 0, memory)
        }
        var count = 0
        var lastWritable = false
        var seen: UInt32 = 0
        while true {
            seen += 1
            guard seen <= tableSize else { throw .chainTooLong(head: head) }
            guard descriptor.length > 0 else { throw .zeroLengthBuffer(head: head) }
            guard count < Self.maxChainDescriptors else { throw .tooManyDescriptors(head: head) }
            let writable = descriptor.flags & Self.descWrite != 0
            guard writable || !lastWritable else { throw .descriptorOrder(head: head) }
            guard UInt64(descriptor.length - 1) <= UInt64.max - descriptor.address else {
                throw .bogusBuffer(address: descriptor.address, length: descriptor.length)
            }
            try visit(VirtQueueBuffer(address: descriptor.address, length: descriptor.length, writable: writable))
            count += 1
            lastWritable = writable
            guard descriptor.flags & Self.descNext != 0 else { break }
            guard UInt32(descriptor.next) < tableSize else { throw .descriptorIndex(descriptor.next, size: UInt16(clamping: tableSize)) }
            descriptor = try readDescriptor(table, UInt32(descriptor.next), memory)
        }
    }

    private struct Descriptor {
        var address: UInt64, length: UInt32, flags: UInt16, next: UInt16
    }

    /// Reads descriptor `index` (already checked against its table's size) of `table`: two
    /// 8-byte loads, no allocation. struct vring_desc is {le64 addr; le32 len; le16 flags;
    /// le16 next}: the second load holds len, flags and next at their offsets from len.
    private func readDescriptor(_ table: UInt64, _ index: UInt32, _ memory: GuestMemory) throws(VirtQueueError) -> Descriptor {
        let at = try Self.offset(table, Self.descriptorSize * UInt64(index))
        guard let address = memory.loadDirect(UInt64.self, at: at),
              let rest = memory.loadDirect(UInt64.self, at: try Self.offset(at, Self.descLength)) else {
            throw .guestMemory("descriptor at 0x\(String(at, radix: 16)) is not in guest RAM")
        }
        return Descriptor(address: address, length: UInt32(truncatingIfNeeded: rest),
                          flags: UInt16(truncatingIfNeeded: rest >> Self.descFlagsShift),
                          next: UInt16(truncatingIfNeeded: rest >> Self.descNextShift))
    }

    /// Returns a chain to the driver with `length` bytes written; tells whether the driver
    /// wants an interrupt for it (VIRTQ_AVAIL_F_NO_INTERRUPT clear, or the used index passed
    /// used_event with EVENT_IDX). QEMU: virtqueue_push() + virtio_should_notify().
    public func push(head: UInt16, length: UInt32, _ memory: GuestMemory) throws(VirtQueueError) -> Bool {
        try fill(head: head, length: length, at: 0, memory)
        return try flush(count: 1, memory)
    }

    /// Writes used-ring entry `usedIndex + position` (not yet visible to the driver: `flush`
    /// publishes it), so a device can return several chains as one unit — a received frame
    /// spread over merged buffers. QEMU: virtqueue_fill().
    public func fill(head: UInt16, length: UInt32, at position: UInt16, _ memory: GuestMemory) throws(VirtQueueError) {
        let (layout, idx) = state.withLock { ($0.layout, $0.usedIdx) }
        guard layout.ready, layout.size > 0 else { return }
        let entry = try Self.offset(layout.used, Self.usedRing + Self.usedEntrySize * UInt64((idx &+ position) % layout.size))
        try store(UInt32(head), memory, entry)
        try store(length, memory, try Self.offset(entry, Self.usedEntryLength))
    }

    /// Publishes `count` filled entries by advancing the used index once; tells whether the
    /// driver wants an interrupt (as `push`). QEMU: virtqueue_flush() + virtio_should_notify().
    public func flush(count: UInt16, _ memory: GuestMemory) throws(VirtQueueError) -> Bool {
        let (layout, idx) = state.withLock { ($0.layout, $0.usedIdx) }
        guard layout.ready, layout.size > 0, count > 0 else { return false }
        let new = idx &+ count
        // The entries must be visible before the index that publishes them.
        atomicMemoryFence(ordering: .releasing)
        try store(new, memory, try Self.offset(layout.used, Self.usedIndex))
        state.withLock {
            $0.usedIdx = new
            $0.inUse = max(0, $0.inUse - Int(count))
        }
        atomicMemoryFence(ordering: .sequentiallyConsistent)
        if layout.eventIdx {
            // used_event: interrupt only when the used index passes the driver's mark.
            // QEMU: vring_need_event().
            let event = try load(UInt16.self, memory, try Self.offset(layout.avail, Self.usedEvent(layout)))
            return new &- event &- 1 < new &- idx
        }
        let flags = try load(UInt16.self, memory, try Self.offset(layout.avail, Self.availFlags))
        return flags & Self.availNoInterrupt == 0
    }

    /// `base + offset`, or an error where a guest-given base would wrap past 2^64.
    static func offset(_ base: UInt64, _ offset: UInt64) throws(VirtQueueError) -> UInt64 {
        let (sum, overflow) = base.addingReportingOverflow(offset)
        guard !overflow else { throw .guestMemory("ring address 0x\(String(base, radix: 16)) + \(offset) wraps") }
        return sum
    }

    private func load<T: FixedWidthInteger & UnsignedInteger>(_ t: T.Type, _ memory: GuestMemory, _ at: UInt64) throws(VirtQueueError) -> T {
        guard let v = memory.loadDirect(t, at: at) else { throw .guestMemory("ring access at 0x\(String(at, radix: 16)) is not in guest RAM") }
        return v
    }

    private func store<T: FixedWidthInteger & UnsignedInteger>(_ v: T, _ memory: GuestMemory, _ at: UInt64) throws(VirtQueueError) {
        guard memory.storeDirect(v, at: at) else { throw .guestMemory("ring access at 0x\(String(at, radix: 16)) is not writable guest RAM") }
    }
}
