import Synchronization
import VMMSys

/// A node of the memory tree: guest-visible memory, device registers, a window onto another
/// region, or a container of subregions. Rendered into each address space's `FlatView`.
///
/// Topology state (subregions, address, priority, enabled, size, alias offset, ioeventfds) is
/// changed only through the methods here, which serialize on the owning `MemorySystem`'s lock
/// and open a transaction around each change. Dispatch never reads that state: it reads the
/// immutable `FlatView` snapshots, the immutable `ops`, and two small locked snapshots.
/// QEMU: `MemoryRegion`.
public final class MemoryRegion: @unchecked Sendable, CustomStringConvertible {
    // @unchecked: mutable fields below are guarded by `system.lock` (or `unboundLock` before
    // the region joins a system); the dispatch-visible ones are Mutex/Atomic.

    /// What a region is; fixed at creation.
    public enum Kind: Sendable {
        /// No contents of its own: only its subregions show (``MemoryRegion/container(name:size:)``).
        case container
        /// Guest RAM backed by the block (``MemoryRegion/ram(name:size:)``).
        case ram(RAMBlock)
        /// Read-only memory backed by the block (``MemoryRegion/rom(name:size:)``).
        case rom(RAMBlock)
        /// Device registers: every access calls the ops (``MemoryRegion/io(name:size:ops:)``).
        case io(MemoryRegionOps)
        /// A window onto another region (``MemoryRegion/alias(name:target:offset:size:)``).
        case alias(MemoryRegion)
    }

    // Rendering reads these for every region of the tree on every commit: they come first,
    // so that with the object header they share one or two cache lines (a tree of 100 000
    // regions does not fit in cache, and each line a render touches per region costs).
    var sizeStorage: UInt128
    var addressStorage: UInt64 = 0
    /// The subregions in the reverse of QEMU's order: lowest priority first, and among equals
    /// the oldest first, so that adding one at an equal priority (a machine's whole build) is
    /// an append, not an insertion at the front. Rendering walks it backwards.
    var subregionStack: [MemoryRegion] = []
    /// The aliased region (fixed at creation; read by rendering without matching on `kind`).
    let aliasTargetStorage: MemoryRegion?
    var priorityStorage: Int32 = 0
    var enabledStorage = true
    var readOnlyStorage = false
    var dirtyLogMaskStorage: UInt8 = 0
    /// Whether the region has contents of its own (RAM, ROM, I/O), so it fills the flat view
    /// where no subregion covers it. QEMU: `mr->terminates`.
    let terminates: Bool
    var aliasOffsetStorage: UInt64 = 0
    /// Pages written while dirty logging was on, per client (RAM and ROM regions only).
    /// QEMU: the RAM block's part of `ram_list.dirty_memory`.
    let dirtyBitmap: DirtyBitmap?

    /// The name given at creation, as `info mtree` shows it. QEMU: `memory_region_name()`.
    public let name: String
    /// What the region is: container, RAM, ROM, I/O or alias.
    public let kind: Kind

    weak var containerStorage: MemoryRegion?
    /// Coalesced MMIO ranges, offsets in this region, in the order added.
    /// QEMU: `mr->coalesced`.
    var coalescedList: [CoalescedMemoryRange] = []
    /// Sorted by `MemoryRegionIoeventfd.isOrderedBefore`; starts are offsets in this region.
    var ioeventfdList: [MemoryRegionIoeventfd] = []
    /// The system this region joined (through a container, an alias or an address space).
    var system: MemorySystem?

    /// Copy of `ioeventfdList` for the userspace-fallback check at dispatch time.
    let eventfdSnapshot = Mutex<[MemoryRegionIoeventfd]>([])
    let hasEventfds = Atomic<Bool>(false)
    /// Accesses that reached this region's callbacks (i.e. exits that were not absorbed).
    let readCount = Atomic<UInt64>(0)
    let writeCount = Atomic<UInt64>(0)
    /// Whether dispatch flushes the coalesced MMIO buffer before reaching this region's
    /// callbacks. QEMU: `mr->flush_coalesced_mmio`.
    let flushCoalescedFlag = Atomic<Bool>(false)

    init(name: String, kind: Kind, size: UInt128) {
        self.name = name
        self.kind = kind
        self.sizeStorage = size
        switch kind {
        case .container:
            aliasTargetStorage = nil; terminates = false; dirtyBitmap = nil
        case .alias(let target):
            aliasTargetStorage = target; terminates = false; dirtyBitmap = nil
        case .io:
            aliasTargetStorage = nil; terminates = true; dirtyBitmap = nil
        case .ram(let block):
            aliasTargetStorage = nil; terminates = true; dirtyBitmap = DirtyBitmap(bytes: block.size)
        case .rom(let block):
            aliasTargetStorage = nil; terminates = true; dirtyBitmap = DirtyBitmap(bytes: block.size)
            readOnlyStorage = true
        }
    }

    /// A region with no contents of its own, only subregions. QEMU: `memory_region_init()`.
    public static func container(name: String, size: UInt128) -> MemoryRegion {
        MemoryRegion(name: name, kind: .container, size: size)
    }

    /// Guest RAM of `size` bytes backed by fresh zeroed host memory. QEMU: `memory_region_init_ram()`.
    public static func ram(name: String, size: UInt64) throws(SystemError) -> MemoryRegion {
        MemoryRegion(name: name, kind: .ram(try RAMBlock(size: size)), size: UInt128(size))
    }

    /// RAM the guest can only read (its writes are dropped); loaders fill it through
    /// `GuestMemory`. QEMU: `memory_region_init_rom()`.
    public static func rom(name: String, size: UInt64) throws(SystemError) -> MemoryRegion {
        MemoryRegion(name: name, kind: .rom(try RAMBlock(size: size)), size: UInt128(size))
    }

    /// Device registers: accesses call `ops`. QEMU: `memory_region_init_io()`.
    public static func io(name: String, size: UInt128, ops: MemoryRegionOps) -> MemoryRegion {
        MemoryRegion(name: name, kind: .io(ops), size: size)
    }

    /// A window of `size` bytes onto `target` starting at `offset` in it.
    /// QEMU: `memory_region_init_alias()`.
    public static func alias(name: String, target: MemoryRegion, offset: UInt64, size: UInt128) -> MemoryRegion {
        let r = MemoryRegion(name: name, kind: .alias(target), size: size)
        r.aliasOffsetStorage = offset
        if let s = target.system { r.bind(to: s) }
        return r
    }

    // MARK: Reading state

    /// Size in bytes, up to 2^64 (a region covering a whole address space), exactly: QEMU's
    /// `memory_region_size()` reports 2^64 as `UINT64_MAX`. QEMU: `mr->size`.
    public var size: UInt128 { withLock { sizeStorage } }
    /// Address within the container. QEMU: `mr->addr`.
    public var address: UInt64 { withLock { addressStorage } }
    /// Priority among overlapping siblings (higher wins). QEMU: `mr->priority`.
    public var priority: Int32 { withLock { priorityStorage } }
    /// Whether the region (and its subtree) shows in the flat views. QEMU: `mr->enabled`.
    public var isEnabled: Bool { withLock { enabledStorage } }
    /// The region's own read-only flag: set for ROM, and for RAM by ``setReadOnly(_:)``. A
    /// range can also be read-only because a container or alias above it is
    /// (``FlatRange/readOnly``). QEMU: `mr->readonly`.
    public var isReadOnly: Bool { withLock { readOnlyStorage } }
    /// Where in ``aliasTarget`` an alias's window starts (0 for other kinds).
    /// QEMU: `mr->alias_offset`.
    public var aliasOffset: UInt64 { withLock { aliasOffsetStorage } }
    /// The region this one is mapped into, if any. QEMU: `mr->container`.
    public var container: MemoryRegion? { withLock { containerStorage } }
    /// The subregions in QEMU's order: higher priority first, among equals the most recently
    /// added (or moved) first. QEMU: `mr->subregions`.
    public var subregions: [MemoryRegion] { withLock { subregionList } }
    /// This region's ioeventfds, offsets relative to the region, in sorted order.
    public var ioeventfds: [MemoryRegionIoeventfd] { withLock { ioeventfdList } }

    /// The backing memory of a RAM or ROM region. QEMU: `mr->ram_block`.
    public var ramBlock: RAMBlock? {
        switch kind {
        case .ram(let b), .rom(let b): return b
        default: return nil
        }
    }

    /// The aliased region, if this is an alias. QEMU: `mr->alias`.
    public var aliasTarget: MemoryRegion? { aliasTargetStorage }

    /// The subregions in QEMU's order (lock held).
    var subregionList: [MemoryRegion] { Array(subregionStack.reversed()) }

    /// Whether the guest accesses this region's bytes directly (RAM/ROM): what an accelerator
    /// maps as memory. QEMU: `memory_region_is_ram()`.
    public var isRAM: Bool { ramBlock != nil }

    /// Accesses that reached the region's callbacks since creation: the exits a device still
    /// costs (a write an ioeventfd absorbed, in the kernel or in userspace, is not counted).
    public var dispatchCounts: (reads: UInt64, writes: UInt64) {
        (readCount.load(ordering: .relaxed), writeCount.load(ordering: .relaxed))
    }

    /// `MemoryRegion(name)`, for logs.
    public var description: String { "MemoryRegion(\(name))" }

    // MARK: Locking

    static let unboundLock = RecursiveLock()

    /// Runs `body` under the lock that guards this region's topology state.
    func withLock<T>(_ body: () throws -> T) rethrows -> T {
        let lock = system?.lock ?? MemoryRegion.unboundLock
        lock.lock()
        defer { lock.unlock() }
        return try body()
    }

    /// Joins `system`, with every subregion and alias target reachable from here.
    func bind(to newSystem: MemorySystem) {
        if let system {
            if system !== newSystem {
                memoryLogger.error("memory region '\(name)' already belongs to another memory system; not rebound")
            }
            return
        }
        system = newSystem
        if !coalescedList.isEmpty {
            newSystem.lock.lock()
            newSystem.coalescedRegionCount += 1
            newSystem.lock.unlock()
        }
        for sub in subregionStack { sub.bind(to: newSystem) }
        if case .alias(let t) = kind { t.bind(to: newSystem) }
    }
}
