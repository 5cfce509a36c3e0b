import VMMSys

/// The part of an address space one flat range covers, as listeners see it.
/// QEMU: `MemoryRegionSection`.
public struct MemoryRegionSection: Sendable {
    public let region: MemoryRegion
    public let addressSpace: AddressSpace
    public let offsetWithinRegion: UInt64
    /// Up to 2^64.
    public let size: UInt128
    public let offsetWithinAddressSpace: UInt64
    public let readOnly: Bool

    init(_ fr: FlatRange, in addressSpace: AddressSpace) {
        region = fr.region
        self.addressSpace = addressSpace
        offsetWithinRegion = fr.offsetInRegion
        size = fr.size
        offsetWithinAddressSpace = fr.start
        readOnly = fr.readOnly
    }
}

/// Told of every change to one address space's flat view, in priority order. Every callback
/// has an empty default. QEMU: `MemoryListener`.
///
/// Order (as QEMU's `MEMORY_LISTENER_CALL`): `begin`, `commit`, `regionAdd`, `regionNop`,
/// `logStart` go Forward (lowest priority first); `regionDel`, `logStop` go Reverse. In the
/// ioeventfd diff `eventfdDel` goes Forward and `eventfdAdd` Reverse (QEMU's literal order).
public protocol MemoryListener: AnyObject, Sendable {
    /// Position among listeners (stable for equal priorities). QEMU: `priority`.
    var priority: Int { get }
    /// Whether this listener consumes ioeventfds; an address space collects ioeventfds only
    /// while at least one such listener is registered. QEMU: `eventfd_add`/`eventfd_del` set.
    var handlesEventfds: Bool { get }

    /// A topology update starts (all listeners of all address spaces).
    func begin()
    /// A topology update ends.
    func commit()
    /// A range appeared (or changed attributes).
    func regionAdd(_ section: MemoryRegionSection)
    /// A range disappeared (or is about to be re-added with new attributes).
    func regionDel(_ section: MemoryRegionSection)
    /// A range survived the update unchanged.
    func regionNop(_ section: MemoryRegionSection)
    func logStart(_ section: MemoryRegionSection, old: UInt8, new: UInt8)
    func logStop(_ section: MemoryRegionSection, old: UInt8, new: UInt8)
    func logSync(_ section: MemoryRegionSection)
    /// An ioeventfd appeared at `ioeventfd.start` (absolute) in `addressSpace`. QEMU passes a
    /// section holding just the address and size; those are `ioeventfd.start` and `.size`.
    func eventfdAdd(_ ioeventfd: MemoryRegionIoeventfd, in addressSpace: AddressSpace)
    /// An ioeventfd went away.
    func eventfdDel(_ ioeventfd: MemoryRegionIoeventfd, in addressSpace: AddressSpace)
    func coalescedIOAdd(_ section: MemoryRegionSection, address: UInt64, length: UInt64)
    func coalescedIODel(_ section: MemoryRegionSection, address: UInt64, length: UInt64)
}

extension MemoryListener {
    public var priority: Int { 0 }
    public var handlesEventfds: Bool { false }
    public func begin() {}
    public func commit() {}
    public func regionAdd(_ section: MemoryRegionSection) {}
    public func regionDel(_ section: MemoryRegionSection) {}
    public func regionNop(_ section: MemoryRegionSection) {}
    public func logStart(_ section: MemoryRegionSection, old: UInt8, new: UInt8) {}
    public func logStop(_ section: MemoryRegionSection, old: UInt8, new: UInt8) {}
    public func logSync(_ section: MemoryRegionSection) {}
    public func eventfdAdd(_ ioeventfd: MemoryRegionIoeventfd, in addressSpace: AddressSpace) {}
    public func eventfdDel(_ ioeventfd: MemoryRegionIoeventfd, in addressSpace: AddressSpace) {}
    public func coalescedIOAdd(_ section: MemoryRegionSection, address: UInt64, length: UInt64) {}
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
