internal import CKVM
import Synchronization
import VMMSys

/// One guest write that KVM buffered in the coalesced ring instead of exiting: `length` (1…8)
/// bytes at `address` of the memory space, or of the I/O space when `isPIO`; `value` holds the
/// bytes little-endian. One `struct kvm_coalesced_mmio`, validated and copied out.
public struct CoalescedWrite: Sendable, Hashable, CustomStringConvertible {
    /// Guest-physical address, or port number with `isPIO` (`kvm_coalesced_mmio.phys_addr`).
    public var address: UInt64
    /// Bytes written, 1…8 (`kvm_coalesced_mmio.len`).
    public var length: Int
    /// A port write rather than MMIO (`kvm_coalesced_mmio.pio`).
    public var isPIO: Bool
    /// The bytes written, little-endian in the low `length` bytes (`kvm_coalesced_mmio.data`).
    public var value: UInt64

    /// A write as the ring would report it (for replaying and for tests).
    public init(address: UInt64, length: Int, isPIO: Bool, value: UInt64) {
        self.address = address
        self.length = length
        self.isPIO = isPIO
        self.value = value
    }

    /// `mmio|pio 0x… len=… value=0x…`, for logs.
    public var description: String {
        "\(isPIO ? "pio" : "mmio") \(hex(address)) len=\(length) value=\(hex(value))"
    }
}

/// The VM's coalesced MMIO/PIO ring (`struct kvm_coalesced_mmio_ring`): a page of every
/// vCPU's mapping, at page `KVM_CAP_COALESCED_MMIO` (its value is the page offset), shared with
/// the kernel. The kernel appends at `last` (under its ring lock, then publishes `last`);
/// userspace consumes at `first` and hands each entry back by advancing it.
/// QEMU: `KVMState.coalesced_mmio_ring`, read by `kvm_flush_coalesced_mmio_buffer()`.
///
/// The page is writable by userspace and its contents come from guest writes, so nothing in it
/// is trusted: `first` and `last` are checked against the ring's capacity before indexing (QEMU
/// indexes with them unchecked), every entry's length against 1…8 and its direction flag
/// against 0/1, and a drain takes at most the entries present when it started, so a guest
/// that keeps writing on another vCPU cannot keep one drain going forever.
///
/// `@unchecked Sendable`: the only state is the mapping (kept alive here) and immutable
/// geometry. Callers serialize drains (the accelerator holds one lock around them); `isEmpty`
/// may be called from any thread.
@safe public final class CoalescedMMIORing: @unchecked Sendable {
    private let mapping: MappedMemory
    /// Byte offset of the ring in `mapping`; `offset + pageSize <= mapping.length` (checked in init).
    private let offset: Int
    /// Entries the ring holds: `KVM_COALESCED_MMIO_MAX`, (page size - header) / entry size.
    public let capacity: Int
    /// The page offset in the vCPU mapping (`KVM_CAP_COALESCED_MMIO`'s value).
    public let pageOffset: Int

    /// Why a drain stopped early.
    public enum Fault: Error, Equatable, CustomStringConvertible {
        /// `first` or `last` is not below `capacity`: nothing was read. `first` was reset to
        /// `last` when only `first` was bad (userspace owns it).
        case index(first: UInt32, last: UInt32, capacity: Int)
        /// An entry with a length outside 1…8 or a direction flag other than 0/1: skipped.
        case entry(index: Int, length: UInt32, pio: UInt32)

        /// One line with the values found.
        public var description: String {
            switch self {
            case .index(let f, let l, let c):
                return "coalesced MMIO ring indices out of range: first=\(f) last=\(l) capacity=\(c)"
            case .entry(let i, let len, let pio):
                return "coalesced MMIO ring entry \(i) malformed: len=\(len) pio=\(pio) (skipped)"
            }
        }
    }

    /// The ring in `run` at page `pageOffset`, or nil if the mapping does not reach that far.
    init?(run: MappedMemory, pageOffset: Int) {
        let page = MappedMemory.pageSize
        let (start, o1) = pageOffset.multipliedReportingOverflow(by: page)
        let (end, o2) = start.addingReportingOverflow(page)
        guard pageOffset > 0, !o1, !o2, end <= run.length else { return nil }
        mapping = run
        offset = start
        self.pageOffset = pageOffset
        capacity = (page - CKVM_COALESCED_RING_ENTRIES) / CKVM_COALESCED_ENTRY_SIZE
    }

    /// Whether the kernel has buffered nothing (or the indices are unusable).
    public var isEmpty: Bool { load(CKVM_COALESCED_RING_FIRST) == load(CKVM_COALESCED_RING_LAST) }

    /// Hands the buffered writes to `body`, oldest first, advancing `first` after each (the
    /// kernel may then reuse the slot). Takes at most the entries present at the start.
    /// Returns how many were handed over, and the fault that stopped it early, if any.
    /// QEMU: the loop of `kvm_flush_coalesced_mmio_buffer()`.
    @discardableResult
    public func drain(_ body: (CoalescedWrite) -> Void) -> (count: Int, fault: Fault?) {
        let last = load(CKVM_COALESCED_RING_LAST)
        var first = load(CKVM_COALESCED_RING_FIRST)
        guard Int(last) < capacity else { return (0, .index(first: first, last: last, capacity: capacity)) }
        guard Int(first) < capacity else {
            store(last, at: CKVM_COALESCED_RING_FIRST)
            return (0, .index(first: first, last: last, capacity: capacity))
        }
        var count = 0
        var fault: Fault?
        while first != last {
            let index = Int(first)
            // index < capacity, so the entry lies inside the page (capacity was derived from it).
            let entry = CKVM_COALESCED_RING_ENTRIES + index * CKVM_COALESCED_ENTRY_SIZE
            let length = load(entry + CKVM_COALESCED_ENTRY_LEN)
            let pio = load(entry + CKVM_COALESCED_ENTRY_PIO)
            if length >= 1, length <= 8, pio <= 1 {
                var value: UInt64 = 0
                for i in 0..<Int(length) {
                    value |= UInt64(byte(entry + CKVM_COALESCED_ENTRY_DATA + i)) << (8 * UInt64(i))
                }
                let address = load64(entry + CKVM_COALESCED_ENTRY_PHYS_ADDR)
                body(CoalescedWrite(address: address, length: Int(length), isPIO: pio == 1, value: value))
                count += 1
            } else if fault == nil {
                fault = .entry(index: index, length: length, pio: pio)
            }
            first = UInt32((index + 1) % capacity)
            store(first, at: CKVM_COALESCED_RING_FIRST)
        }
        return (count, fault)
    }

    // MARK: Raw access (every offset is inside the ring's page, checked against the mapping in init)

    /// For tests: plants the header and entries as a (possibly hostile) kernel would.
    func plant(first: UInt32, last: UInt32) {
        store(first, at: CKVM_COALESCED_RING_FIRST)
        store(last, at: CKVM_COALESCED_RING_LAST)
    }

    /// For tests: writes entry `index` (< capacity) raw.
    func plantEntry(_ index: Int, address: UInt64, length: UInt32, pio: UInt32, data: [UInt8]) {
        precondition(index >= 0 && index < capacity && data.count <= 8)
        let entry = CKVM_COALESCED_RING_ENTRIES + index * CKVM_COALESCED_ENTRY_SIZE
        check(entry, CKVM_COALESCED_ENTRY_SIZE)
        // SAFETY: the entry lies inside the ring's page (checked above).
        unsafe (mapping.base + offset + entry).storeBytes(of: address, toByteOffset: CKVM_COALESCED_ENTRY_PHYS_ADDR, as: UInt64.self)
        unsafe (mapping.base + offset + entry).storeBytes(of: length, toByteOffset: CKVM_COALESCED_ENTRY_LEN, as: UInt32.self)
        unsafe (mapping.base + offset + entry).storeBytes(of: pio, toByteOffset: CKVM_COALESCED_ENTRY_PIO, as: UInt32.self)
        for (i, b) in data.enumerated() {
            unsafe (mapping.base + offset + entry).storeBytes(of: b, toByteOffset: CKVM_COALESCED_ENTRY_DATA + i, as: UInt8.self)
        }
    }

    /// The raw header, for tests and diagnostics.
    var header: (first: UInt32, last: UInt32) { (load(CKVM_COALESCED_RING_FIRST), load(CKVM_COALESCED_RING_LAST)) }

    @inline(__always)
    private func check(_ at: Int, _ size: Int) {
        precondition(at >= 0 && size >= 0 && at <= MappedMemory.pageSize - size, "coalesced ring offset out of range")
    }

    /// Acquire load of a 32-bit word at `at` bytes into the ring.
    @inline(__always)
    private func load(_ at: Int) -> UInt32 {
        check(at, 4)
        // SAFETY: [offset + at, +4) lies inside the ring's page, inside the mapping (init).
        return unsafe ckvm_load_acquire_u32(mapping.base + offset + at)
    }

    @inline(__always)
    private func load64(_ at: Int) -> UInt64 {
        check(at, 8)
        // SAFETY: as in load(_:).
        return unsafe (mapping.base + offset).loadUnaligned(fromByteOffset: at, as: UInt64.self)
    }

    @inline(__always)
    private func byte(_ at: Int) -> UInt8 {
        check(at, 1)
        // SAFETY: as in load(_:).
        return unsafe (mapping.base + offset).load(fromByteOffset: at, as: UInt8.self)
    }

    /// Release store (hands consumed entries back to the kernel after they were read).
    @inline(__always)
    private func store(_ value: UInt32, at: Int) {
        check(at, 4)
        // SAFETY: as in load(_:).
        unsafe ckvm_store_release_u32(mapping.base + offset + at, value)
    }
}
