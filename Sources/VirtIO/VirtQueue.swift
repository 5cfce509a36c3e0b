import Memory
import Synchronization

/// One guest buffer of a descriptor chain. `pop` guarantees `length > 0` and that
/// `address + length` does not pass 2^64.
public struct VirtQueueBuffer: Sendable, Equatable {
    public var address: UInt64
    public var length: UInt32
    /// Device-writable (VIRTQ_DESC_F_WRITE); otherwise device-readable.
    public var writable: Bool
}

/// A chain taken from the available ring: its head (to return in the used ring) and buffers,
/// device-readable ones first (`pop` refuses any other order, as QEMU does).
public struct DescriptorChain: Sendable, Equatable {
    public var head: UInt16
    public var buffers: [VirtQueueBuffer]

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
    public static let maxSize: UInt16 = 32768
    /// At most this many buffers per chain, direct and indirect together.
    /// QEMU: VIRTQUEUE_MAX_SIZE.
    public static let maxChainDescriptors = 1024
    static let descNext: UInt16 = 1, descWrite: UInt16 = 2, descIndirect: UInt16 = 4
    static let availNoInterrupt: UInt16 = 1
    static let descriptorSize: UInt64 = 16

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

    /// Bytes of each ring for `size` entries, with the EVENT_IDX trailer (virtio 1.x §2.7).
    static func ringSizes(_ size: UInt16) -> (desc: UInt64, avail: UInt64, used: UInt64) {
        let n = UInt64(size)
        return (descriptorSize * n, 6 + 2 * n, 6 + 8 * n)
    }

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
            s.layout = Layout(size: size, desc: desc, avail: avail, used: used, ready: true, eventIdx: eventIdx)
            s.lastAvail = 0
            s.usedIdx = 0
        }
    }

    /// Forgets the rings (device reset).
    public func reset() { state.withLock { $0 = (Layout(), 0, 0) } }

    public var isReady: Bool { state.withLock { $0.layout.ready && $0.layout.size > 0 } }

    /// Whether `size` is acceptable: a power of two from 1 to `maxSize`.
    public func accepts(size: UInt16) -> Bool { size > 0 && size <= maxSize && size & (size &- 1) == 0 }

    /// Whether the driver has published chains not yet taken (a cheap look, for rescheduling).
    public func hasAvailable(_ memory: GuestMemory) -> Bool {
        let (layout, last) = state.withLock { ($0.layout, $0.lastAvail) }
        guard layout.ready, layout.size > 0, let at = try? Self.offset(layout.avail, 2) else { return false }
        return (try? memory.load(UInt16.self, at: at)).map { $0 != last } ?? false
    }

    /// Takes the next available chain, or nil when the driver published nothing new.
    /// QEMU: virtqueue_split_pop().
    public func pop(_ memory: GuestMemory) throws(VirtQueueError) -> DescriptorChain? {
        let (layout, last) = state.withLock { ($0.layout, $0.lastAvail) }
        guard layout.ready, layout.size > 0 else { return nil }
        if layout.eventIdx {
            // avail_event: "kick me for anything after what I have taken", published before the
            // index is read so a driver adding an entry meanwhile still kicks. (§2.7.10)
            try store(last, memory, try Self.offset(layout.used, 4 + 8 * UInt64(layout.size)))
            atomicMemoryFence(ordering: .sequentiallyConsistent)
        }
        let published = try load(UInt16.self, memory, try Self.offset(layout.avail, 2))
        guard published != last else { return nil }
        guard published &- last <= layout.size else {
            throw .availIndexJump(lastSeen: last, published: published, size: layout.size)
        }
        // The ring entry is read after the index (x86 keeps loads in order; the fence documents it).
        atomicMemoryFence(ordering: .acquiring)
        let head = try load(UInt16.self, memory, try Self.offset(layout.avail, 4 + 2 * UInt64(last % layout.size)))
        let chain = try walk(head: head, layout: layout, memory: memory)
        state.withLock { $0.lastAvail = last &+ 1 }
        return chain
    }

    /// Follows one chain. Only the head may point to an indirect table (QEMU reads the
    /// INDIRECT flag of the head alone); within a table, `next` indexes that table.
    private func walk(head: UInt16, layout: Layout, memory: GuestMemory) throws(VirtQueueError) -> DescriptorChain {
        guard head < layout.size else { throw .descriptorIndex(head, size: layout.size) }
        var table = layout.desc
        var tableSize = UInt32(layout.size)
        var descriptor = try readDescriptor(table, UInt32(head), memory)
        if descriptor.flags & Self.descIndirect != 0 {
            // The table itself is checked entry by entry as the chain reads it (a table outside
            // RAM fails on its first read), so a 4 GiB table costs nothing up front.
            let len = descriptor.length
            guard len > 0, len % 16 == 0, UInt64(len - 1) <= UInt64.max - descriptor.address else {
                throw .badIndirect(head: head)
            }
            table = descriptor.address
            tableSize = len / 16
            descriptor = try readDescriptor(table, 0, memory)
        }
        var buffers: [VirtQueueBuffer] = []
        var seen: UInt32 = 0
        while true {
            seen += 1
            guard seen <= tableSize else { throw .chainTooLong(head: head) }
            guard descriptor.length > 0 else { throw .zeroLengthBuffer(head: head) }
            guard buffers.count < Self.maxChainDescriptors else { throw .tooManyDescriptors(head: head) }
            let writable = descriptor.flags & Self.descWrite != 0
            guard writable || buffers.last?.writable != true else { throw .descriptorOrder(head: head) }
            guard UInt64(descriptor.length - 1) <= UInt64.max - descriptor.address else {
                throw .bogusBuffer(address: descriptor.address, length: descriptor.length)
            }
            buffers.append(VirtQueueBuffer(address: descriptor.address, length: descriptor.length, writable: writable))
            guard descriptor.flags & Self.descNext != 0 else { break }
            guard UInt32(descriptor.next) < tableSize else { throw .descriptorIndex(descriptor.next, size: UInt16(clamping: tableSize)) }
            descriptor = try readDescriptor(table, UInt32(descriptor.next), memory)
        }
        return DescriptorChain(head: head, buffers: buffers)
    }

    private struct Descriptor {
        var address: UInt64, length: UInt32, flags: UInt16, next: UInt16
    }

    /// Reads descriptor `index` (already checked against its table's size) of `table`.
    private func readDescriptor(_ table: UInt64, _ index: UInt32, _ memory: GuestMemory) throws(VirtQueueError) -> Descriptor {
        let at = try Self.offset(table, Self.descriptorSize * UInt64(index))
        let bytes: [UInt8]
        do { bytes = try memory.read(at: at, count: 16) } catch { throw .guestMemory(error.description) }
        func le<T: FixedWidthInteger>(_ offset: Int, _: T.Type) -> T {
            var v = T.zero
            for i in 0..<(T.bitWidth / 8) { v |= T(truncatingIfNeeded: bytes[offset + i]) << (8 * i) }
            return v
        }
        return Descriptor(address: le(0, UInt64.self), length: le(8, UInt32.self), flags: le(12, UInt16.self), next: le(14, UInt16.self))
    }

    /// Returns a chain to the driver with `length` bytes written; tells whether the driver
    /// wants an interrupt for it (VIRTQ_AVAIL_F_NO_INTERRUPT clear, or the used index passed
    /// used_event with EVENT_IDX). QEMU: virtqueue_push() + virtio_should_notify().
    public func push(head: UInt16, length: UInt32, _ memory: GuestMemory) throws(VirtQueueError) -> Bool {
        let (layout, idx) = state.withLock { ($0.layout, $0.usedIdx) }
        guard layout.ready, layout.size > 0 else { return false }
        let entry = try Self.offset(layout.used, 4 + 8 * UInt64(idx % layout.size))
        try store(UInt32(head), memory, entry)
        try store(length, memory, try Self.offset(entry, 4))
        // The entry must be visible before the index that publishes it.
        atomicMemoryFence(ordering: .releasing)
        try store(idx &+ 1, memory, try Self.offset(layout.used, 2))
        state.withLock { $0.usedIdx = idx &+ 1 }
        atomicMemoryFence(ordering: .sequentiallyConsistent)
        if layout.eventIdx {
            // used_event: interrupt only when the used index passes the driver's mark.
            // QEMU: vring_need_event().
            let event = try load(UInt16.self, memory, try Self.offset(layout.avail, 4 + 2 * UInt64(layout.size)))
            let new = idx &+ 1
            return new &- event &- 1 < new &- idx
        }
        let flags = try load(UInt16.self, memory, layout.avail)
        return flags & Self.availNoInterrupt == 0
    }

    /// `base + offset`, or an error where a guest-given base would wrap past 2^64.
    static func offset(_ base: UInt64, _ offset: UInt64) throws(VirtQueueError) -> UInt64 {
        let (sum, overflow) = base.addingReportingOverflow(offset)
        guard !overflow else { throw .guestMemory("ring address 0x\(String(base, radix: 16)) + \(offset) wraps") }
        return sum
    }

    private func load<T: FixedWidthInteger>(_ t: T.Type, _ memory: GuestMemory, _ at: UInt64) throws(VirtQueueError) -> T {
        do { return try memory.load(t, at: at) } catch { throw .guestMemory(error.description) }
    }

    private func store<T: FixedWidthInteger>(_ v: T, _ memory: GuestMemory, _ at: UInt64) throws(VirtQueueError) {
        do { try memory.store(v, at: at) } catch { throw .guestMemory(error.description) }
    }
}
