import Synchronization
import VMMSys

/// One guest's memory API state: the big lock, the transaction depth and pending flags, the
/// address spaces and the global listener list. Production uses `shared` (QEMU has exactly
/// one); tests make their own so their listener counts are theirs alone.
public final class MemorySystem: @unchecked Sendable {
    // @unchecked: every mutable field is guarded by `lock`.

    /// The process's memory system.
    public static let shared = MemorySystem()

    let lock = RecursiveLock()
    var transactionDepth = 0
    var updatePending = false
    var ioeventfdUpdatePending = false
    /// Regions whose own ioeventfds changed since the last commit (their flat ranges'
    /// entries are recollected even where the ranges did not move).
    var ioeventfdChangedRegions: [ObjectIdentifier: MemoryRegion] = [:]
    var addressSpaces: [AddressSpace] = []
    /// All listeners of all address spaces, by priority. QEMU: `memory_listeners`.
    var listeners: [any MemoryListener] = []
    /// How many regions of this system have coalesced ranges (counted when a region gets its
    /// first range while bound, or joins with ranges): while zero, commits skip looking.
    var coalescedRegionCount = 0
    /// Whether every RAM region logs for the migration client. QEMU: `global_dirty_tracking`.
    var globalDirtyLogStorage = false
    /// Drains the accelerator's coalesced MMIO buffer. QEMU: `qemu_flush_coalesced_mmio_buffer()`.
    let coalescedFlush = Mutex<(@Sendable () -> Void)?>(nil)

    /// A memory system of its own, with no address spaces or listeners: for tests and for
    /// running several guests in one process. QEMU has only the global one.
    public init() {}

    /// Runs `body` as one transaction: topology changes made inside are rendered, diffed and
    /// announced once, at the outermost commit. Nestable; the commit cannot be forgotten.
    /// QEMU: `memory_region_transaction_begin()`/`_commit()`.
    public func withTransaction<T>(_ body: () throws -> T) rethrows -> T {
        lock.lock()
        defer { lock.unlock() }
        transactionDepth += 1
        defer { commit() }
        return try body()
    }

    private func commit() {
        transactionDepth -= 1
        guard transactionDepth == 0 else { return }
        if updatePending {
            let views = addressSpaces.map {
                FlatView.render(root: $0.root, globalDirtyLog: globalDirtyLogStorage, expected: $0.currentMap.ranges.count)
            }
            listeners.call(.forward) { $0.begin() }
            let changed = Array(ioeventfdChangedRegions.values)
            for (space, view) in zip(addressSpaces, views) {
                let change = space.setFlatView(view)
                space.updateIoeventfds(after: change, changedRegions: changed)
            }
            updatePending = false
            ioeventfdUpdatePending = false
            ioeventfdChangedRegions = [:]
            listeners.call(.forward) { $0.commit() }
        } else if ioeventfdUpdatePending {
            let changed = Array(ioeventfdChangedRegions.values)
            for space in addressSpaces { space.updateIoeventfds(after: nil, changedRegions: changed) }
            ioeventfdUpdatePending = false
            ioeventfdChangedRegions = [:]
        }
    }
}

/// Runs `body` as one transaction of the shared memory system. QEMU:
/// `memory_region_transaction_begin()`/`_commit()`.
public func withMemoryTransaction<T>(_ body: () throws -> T) rethrows -> T {
    try MemorySystem.shared.withTransaction(body)
}

extension MemoryRegion {
    /// Runs `body` as one transaction of the memory system this region belongs to (the shared
    /// one while it belongs to none). QEMU: `memory_region_transaction_begin()`/`_commit()`.
    public func withTransaction<T>(_ body: () throws -> T) rethrows -> T {
        try (system ?? .shared).withTransaction(body)
    }
}

extension MemorySystem {
    /// Installs what drains the accelerator's coalesced MMIO buffer (nil: none). Dispatch calls
    /// it before reaching a region marked `setFlushCoalesced()`, and `clearCoalescing()` before
    /// removing ranges, so buffered writes are never overtaken. The accelerator's drain must
    /// tolerate being called from any thread that dispatches, and re-entry (a drained write
    /// may reach a flushing region). QEMU: `qemu_flush_coalesced_mmio_buffer()` →
    /// `kvm_flush_coalesced_mmio_buffer()`.
    package func setCoalescedMMIOFlush(_ flush: (@Sendable () -> Void)?) {
        coalescedFlush.withLock { $0 = flush }
    }

    /// Drains the coalesced MMIO buffer if an accelerator installed a drain.
    /// QEMU: `qemu_flush_coalesced_mmio_buffer()`.
    package func flushCoalescedMMIO() {
        let flush = coalescedFlush.withLock { $0 }
        flush?()
    }
}
