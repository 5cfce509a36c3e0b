import VMMSys

/// The part of an address space one flat range covers, as listeners see it.
/// QEMU: `MemoryRegionSection`.
public struct MemoryRegionSection: Sendable {
    /// The region whose contents the section shows. QEMU: `section->mr`.
    public let region: MemoryRegion
    /// The address space the section belongs to (a listener may listen to several).
    /// QEMU: the address space of `section->fv`.
    public let addressSpace: AddressSpace
    /// The offset in `region` of the section's first byte. QEMU: `offset_within_region`.
    public let offsetWithinRegion: UInt64
    /// Length in bytes, up to 2^64. QEMU: `section->size`.
    public let size: UInt128
    /// The address of the section's first byte in the address space.
    /// QEMU: `offset_within_address_space`.
    public let offsetWithinAddressSpace: UInt64
    /// Guest writes are refused here (ROM, or under a read-only container or alias): an
    /// accelerator maps it read-only or not at all. QEMU: `section->readonly`.
    public let readOnly: Bool
    /// The clients logging this range (`DirtyMemoryClient.mask` bits) as rendered: what
    /// decides whether a memory slot logs dirty pages. QEMU: the flat range's
    /// `dirty_log_mask`, which KVM reads as `memory_region_get_dirty_log_mask(mr)`.
    public let dirtyLogMask: UInt8

    init(_ fr: FlatRange, in addressSpace: AddressSpace) {
        region = fr.region
        self.addressSpace = addressSpace
        offsetWithinRegion = fr.offsetInRegion
        size = fr.size
        offsetWithinAddressSpace = fr.start
        readOnly = fr.readOnly
        dirtyLogMask = fr.dirtyLogMask
    }

    /// The part of `fr` whose region offsets are `offsets` (which must lie inside it).
    init(_ fr: FlatRange, in addressSpace: AddressSpace, narrowedTo offsets: Range<UInt128>) {
        region = fr.region
        self.addressSpace = addressSpace
        offsetWithinRegion = UInt64(offsets.lowerBound)
        size = offsets.upperBound - offsets.lowerBound
        offsetWithinAddressSpace = fr.start &+ (UInt64(offsets.lowerBound) &- fr.offsetInRegion)
        readOnly = fr.readOnly
        dirtyLogMask = fr.dirtyLogMask
    }
}

/// Told of every change to one address space's flat view, in priority order. Every callback
/// has an empty default. QEMU: `MemoryListener`.
///
/// Order (as QEMU's `MEMORY_LISTENER_CALL`): `begin`, `commit`, `regionAdd`, `regionNop`,
/// `logStart`, `coalescedIOAdd`, `logGlobalStart` go Forward (lowest priority first);
/// `regionDel`, `logStop`, `coalescedIODel`, `logGlobalStop` go Reverse. In the ioeventfd diff
/// `eventfdDel` goes Forward and `eventfdAdd` Reverse (QEMU's literal order). `logSync` and
/// `logClear` go listener by listener in priority order, as QEMU walks `memory_listeners`.
public protocol MemoryListener: AnyObject, Sendable {
    /// Position among listeners (stable for equal priorities). QEMU: `priority`.
    var priority: Int { get }
    /// Whether this listener consumes ioeventfds; an address space collects ioeventfds only
    /// while at least one such listener is registered. QEMU: `eventfd_add`/`eventfd_del` set.
    var handlesEventfds: Bool { get }
    /// Whether this listener takes `regionNop` (false by default, like a QEMU listener whose
    /// `region_nop` is NULL — KVM's). A listener implementing `regionNop` must say true, or
    /// it is not called: on a commit that moved one range among a hundred thousand, telling
    /// every listener about every unchanged range is most of the work.
    var handlesRegionNop: Bool { get }

    /// A topology update starts (all listeners of all address spaces). QEMU: `begin`.
    func begin()
    /// A topology update ends. QEMU: `commit`.
    func commit()
    /// A range appeared (or changed attributes). QEMU: `region_add`.
    func regionAdd(_ section: MemoryRegionSection)
    /// A range disappeared (or is about to be re-added with new attributes). QEMU: `region_del`.
    func regionDel(_ section: MemoryRegionSection)
    /// A range survived the update unchanged (only to listeners with `handlesRegionNop`).
    /// QEMU: `region_nop`.
    func regionNop(_ section: MemoryRegionSection)
    /// Dirty logging started for some client on a range that stays mapped (`old`/`new` are
    /// the dirty log masks); also replayed at registration for ranges that log. A range that
    /// appears already logging gets only `regionAdd` (read `section.dirtyLogMask`).
    /// QEMU: `log_start`.
    func logStart(_ section: MemoryRegionSection, old: UInt8, new: UInt8)
    /// Dirty logging stopped for some client on a range that stays mapped; also sent before
    /// `regionDel` at unregistration. QEMU: `log_stop`.
    func logStop(_ section: MemoryRegionSection, old: UInt8, new: UInt8)
    /// Pull the accelerator's dirty log for this range into the region's bitmap
    /// (`MemoryRegion.setDirty(bitmap:offset:pages:)`). QEMU: `log_sync`.
    func logSync(_ section: MemoryRegionSection)
    /// The region's bits for this part of the range were cleared: re-arm the accelerator's
    /// logging there (KVM_CLEAR_DIRTY_LOG under manual protection). The section is narrowed
    /// to the pages cleared. QEMU: `log_clear`.
    func logClear(_ section: MemoryRegionSection)
    /// Global dirty logging (migration) starts; RAM ranges then get `logStart` in the commit
    /// that follows. QEMU: `log_global_start`.
    func logGlobalStart()
    /// Global dirty logging stopped (after the commit that sent `logStop`). QEMU: `log_global_stop`.
    func logGlobalStop()
    /// An ioeventfd appeared at `ioeventfd.start` (absolute) in `addressSpace`. QEMU passes a
    /// section holding just the address and size; those are `ioeventfd.start` and `.size`.
    /// QEMU: `eventfd_add`.
    func eventfdAdd(_ ioeventfd: MemoryRegionIoeventfd, in addressSpace: AddressSpace)
    /// An ioeventfd went away (`ioeventfd.start` absolute, as for ``eventfdAdd(_:in:)``).
    /// QEMU: `eventfd_del`.
    func eventfdDel(_ ioeventfd: MemoryRegionIoeventfd, in addressSpace: AddressSpace)
    /// Writes to `[address, address + length)` (absolute, inside `section`) may be buffered
    /// and replayed later in order (coalesced MMIO/PIO). Sent after `regionAdd` of a range
    /// whose region has coalesced ranges, and when one is added to a mapped region.
    /// QEMU: `coalesced_io_add`.
    func coalescedIOAdd(_ section: MemoryRegionSection, address: UInt64, length: UInt64)
    /// No longer: sent before `regionDel`, and when the region's coalescing is cleared.
    /// QEMU: `coalesced_io_del`.
    func coalescedIODel(_ section: MemoryRegionSection, address: UInt64, length: UInt64)
}

/// The defaults: a listener implements only the callbacks it needs, as a QEMU listener leaves
/// the others NULL.
extension MemoryListener {
    /// 0 by default.
    public var priority: Int { 0 }
    /// False by default: the address space collects no ioeventfds for this listener.
    public var handlesEventfds: Bool { false }
    /// False by default: ``regionNop(_:)`` is not called.
    public var handlesRegionNop: Bool { false }
    /// Does nothing by default.
    public func begin() {}
    /// Does nothing by default.
    public func commit() {}
    /// Does nothing by default.
    public func regionAdd(_ section: MemoryRegionSection) {}
    /// Does nothing by default.
    public func regionDel(_ section: MemoryRegionSection) {}
    /// Does nothing by default (and is not called unless ``handlesRegionNop`` is true).
    public func regionNop(_ section: MemoryRegionSection) {}
    /// Does nothing by default.
    public func logStart(_ section: MemoryRegionSection, old: UInt8, new: UInt8) {}
    /// Does nothing by default.
    public func logStop(_ section: MemoryRegionSection, old: UInt8, new: UInt8) {}
    /// Does nothing by default: a listener without a dirty log of its own has nothing to pull.
    public func logSync(_ section: MemoryRegionSection) {}
    /// Does nothing by default.
    public func logClear(_ section: MemoryRegionSection) {}
    /// Does nothing by default.
    public func logGlobalStart() {}
    /// Does nothing by default.
    public func logGlobalStop() {}
    /// Does nothing by default (and is not called unless ``handlesEventfds`` is true).
    public func eventfdAdd(_ ioeventfd: MemoryRegionIoeventfd, in addressSpace: AddressSpace) {}
    /// Does nothing by default (and is not called unless ``handlesEventfds`` is true).
    public func eventfdDel(_ ioeventfd: MemoryRegionIoeventfd, in addressSpace: AddressSpace) {}
    /// Does nothing by default: the range's writes keep exiting one by one.
    public func coalescedIOAdd(_ section: MemoryRegionSection, address: UInt64, length: UInt64) {}
    /// Does nothing by default.
    public func coalescedIODel(_ section: MemoryRegionSection, address: UInt64, length: UInt64) {}
}

/// Which way a callback walks the priority-sorted listener list.
enum ListenerDirection { case forward, reverse }

extension Array where Element == any MemoryListener {
    /// Inserts keeping priority order, after existing listeners of equal priority.
    /// QEMU: the insertion in `memory_listener_register()`.
    mutating func insertByPriority(_ listener: any MemoryListener) {
        let i = firstIndex { listener.priority < $0.priority } ?? endIndex
        insert(listener, at: i)
    }

    func call(_ direction: ListenerDirection, _ body: (any MemoryListener) -> Void) {
        switch direction {
        case .forward: for l in self { body(l) }
        case .reverse: for l in reversed() { body(l) }
        }
    }
}
