import Synchronization
import VMMSys

/// What dispatch in one address space did in userspace: the raw material for "which doorbells
/// still exit". Per-region counts live on the regions (`MemoryRegion.dispatchCounts`).
public final class DispatchCounters: Sendable {
    let unassignedReadCount = Atomic<UInt64>(0)
    let unassignedWriteCount = Atomic<UInt64>(0)
    let rejectedCount = Atomic<UInt64>(0)
    let eventfdSignalCount = Atomic<UInt64>(0)
    private let signalsByNotifier = Mutex<[ObjectIdentifier: UInt64]>([:])

    init() {}

    /// Reads of addresses no region claims (they returned all ones).
    public var unassignedReads: UInt64 { unassignedReadCount.load(ordering: .relaxed) }
    /// Writes to addresses no region claims (dropped).
    public var unassignedWrites: UInt64 { unassignedWriteCount.load(ordering: .relaxed) }
    /// Accesses a region refused (size/alignment) or writes to read-only memory (dropped).
    public var rejected: UInt64 { rejectedCount.load(ordering: .relaxed) }
    /// Writes that matched an ioeventfd and were signalled by userspace (the fallback).
    public var eventfdSignals: UInt64 { eventfdSignalCount.load(ordering: .relaxed) }

    func countSignal(of notifier: EventNotifier) {
        signalsByNotifier.withLock { $0[ObjectIdentifier(notifier), default: 0] += 1 }
    }

    /// Writes userspace signalled to `notifier` (the kernel's signals are not seen here).
    public func eventfdSignals(of notifier: EventNotifier) -> UInt64 {
        signalsByNotifier.withLock { $0[ObjectIdentifier(notifier)] ?? 0 }
    }
}
