import Synchronization
import VMMSys

/// What one kind of initiator (a vCPU's memory bus, its I/O ports, a device's DMA) sees: a root
/// region rendered into a `FlatView`, the listeners told of its changes, and its ioeventfds.
/// QEMU: `AddressSpace`.
public final class AddressSpace: @unchecked Sendable, CustomStringConvertible {
    // @unchecked: listener and ioeventfd state is guarded by `system.lock`; the current map is
    // a Mutex-held immutable snapshot; fallback state is Mutex/Atomic.

    /// The name `info mtree` shows ("memory", "I/O"). QEMU: `as->name`.
    public let name: String
    /// The region rendered at address 0 of this space. QEMU: `as->root`.
    public let root: MemoryRegion
    /// The memory system whose lock, transactions and listener list this space shares.
    public let system: MemorySystem
    private let map: Mutex<FlatView>
    /// Listeners of this address space, by priority. QEMU: `as->listeners`.
    var listeners: [any MemoryListener] = []
    /// How many registered listeners consume ioeventfds. QEMU: `ioeventfd_notifiers`.
    var ioeventfdNotifiers = 0
    /// Absolute ioeventfds last announced to listeners, sorted, each with the flat range it
    /// came from. QEMU: `as->ioeventfds`.
    var ioeventfdEntries: [CollectedIoeventfd] = []

    private let acceleratorFlag = Atomic<Bool>(false)
    /// Refusals remembered one by one (at most `refusedIoeventfdLimit`) and those counted only.
    private let refusedList = Mutex<(entries: [MemoryRegionIoeventfd], unrecorded: Int)>(([], 0))
    /// `entries.count + unrecorded`, for the dispatch fast path.
    private let refusedCount = Atomic<Int>(0)

    /// Exits this address space handled in userspace.
    public let counters = DispatchCounters()

    /// Creates an address space over `root` in `system`. QEMU: `address_space_init()`.
    public init(root: MemoryRegion, name: String, system: MemorySystem = .shared) {
        self.name = name
        self.root = root
        self.system = system
        map = Mutex(.empty)
        system.lock.lock()
        defer { system.lock.unlock() }
        root.bind(to: system)
        system.addressSpaces.append(self)
        map.withLock { $0 = FlatView.render(root: root, globalDirtyLog: system.globalDirtyLogStorage) }
    }

    /// `AddressSpace(name)`, for logs.
    public var description: String { "AddressSpace(\(name))" }

    /// The current flat view: an immutable snapshot, safe to use from any thread.
    /// QEMU: `address_space_to_flatview()`.
    public var currentMap: FlatView { map.withLock { $0 } }

    /// The absolute ioeventfds announced to listeners, sorted. QEMU: `as->ioeventfds`.
    public var ioeventfds: [MemoryRegionIoeventfd] {
        system.lock.lock()
        defer { system.lock.unlock() }
        return ioeventfdList
    }

    // MARK: Topology updates (called by MemorySystem with the lock held)

    /// What a view swap changed: the ranges only in the old view and those only in the new
    /// one (nil when no listener was told, so nothing was compared).
    struct TopologyChange {
        var deleted: [FlatRange] = []
        var added: [FlatRange] = []
    }

    /// Announces the difference between the current and `new` views to this space's
    /// listeners — all deletions first (Reverse), then additions and survivors (Forward) —
    /// then publishes `new`. QEMU: `address_space_set_flatview()`.
    @discardableResult
    func setFlatView(_ new: FlatView) -> TopologyChange? {
        let old = currentMap
        var change: TopologyChange?
        if !listeners.isEmpty {
            var c = TopologyChange()
            let laterSteps = updateTopologyPass(old: old, new: new, adding: false, &c)
            if listeners.contains(where: \.handlesRegionNop) {
                updateTopologyPass(old: old, new: new, adding: true, &c)
            } else {
                // Nobody takes nops: the second pass only has the steps the first one noted.
                for step in laterSteps { addingStep(step, old: old.ranges, new: new.ranges, nopListeners: [], &c) }
            }
            change = c
        }
        map.withLock { $0 = new }
        return change
    }

    /// A step of the adding pass: a range only in the new view, or one in both (old index,
    /// new index).
    enum AddingStep { case add(Int), keep(Int, Int) }

    /// One merge pass over two sorted views. QEMU: `address_space_update_topology_pass()`.
    /// The deleting pass returns the steps the adding pass will have to take other than
    /// nops (additions, and kept ranges whose dirty log mask changed), so that when no
    /// listener takes nops the adding pass need not walk the views again.
    ///
    /// Unchanged ranges (most of them, when one BAR moved) are compared in place, field by
    /// field, and a section is built for one only when a listener takes `regionNop` or its
    /// dirty log mask changed: building one references the region, and touching a hundred
    /// thousand regions is what a pass would otherwise cost.
    @discardableResult
    private func updateTopologyPass(old: FlatView, new: FlatView, adding: Bool, _ change: inout TopologyChange) -> [AddingStep] {
        var iold = 0, inew = 0
        let o = old.ranges, n = new.ranges
        let nopListeners = adding ? listeners.filter(\.handlesRegionNop) : []
        var steps: [AddingStep] = []
        while iold < o.count || inew < n.count {
            let same = iold < o.count && inew < n.count && Self.sameRange(o, iold, n, inew)
            if iold < o.count, !same, inew == n.count || o[iold].start <= n[inew].start {
                // In old but not in new, or in both with other attributes.
                if !adding {
                    let frold = o[iold]
                    coalescedDel(frold)
                    let s = MemoryRegionSection(frold, in: self)
                    listeners.call(.reverse) { $0.regionDel(s) }
                    change.deleted.append(frold)
                }
                iold += 1
            } else if same {
                if adding {
                    addingStep(.keep(iold, inew), old: o, new: n, nopListeners: nopListeners, &change)
                } else if o[iold].dirtyLogMask != n[inew].dirtyLogMask {
                    steps.append(.keep(iold, inew))
                }
                iold += 1
                inew += 1
            } else {
                if adding {
                    addingStep(.add(inew), old: o, new: n, nopListeners: nopListeners, &change)
                } else {
                    steps.append(.add(inew))
                }
                inew += 1
            }
        }
        return steps
    }

    /// What the adding pass does for one step: region add (then its coalesced ranges) for a
    /// new range; for a kept one, nop to the listeners that take it, then log start (Forward)
    /// or stop (Reverse) if its dirty log mask grew or shrank.
    private func addingStep(_ step: AddingStep, old o: [FlatRange], new n: [FlatRange], nopListeners: [any MemoryListener],
                            _ change: inout TopologyChange) {
        switch step {
        case .add(let inew):
            let frnew = n[inew]
            let s = MemoryRegionSection(frnew, in: self)
            listeners.call(.forward) { $0.regionAdd(s) }
            coalescedAdd(frnew)
            change.added.append(frnew)
        case .keep(let iold, let inew):
            let oldMask = o[iold].dirtyLogMask, newMask = n[inew].dirtyLogMask
            guard !nopListeners.isEmpty || oldMask != newMask else { return }
            let s = MemoryRegionSection(n[inew], in: self)
            nopListeners.call(.forward) { $0.regionNop(s) }
            if newMask & ~oldMask != 0 {
                listeners.call(.forward) { $0.logStart(s, old: oldMask, new: newMask) }
            }
            if oldMask & ~newMask != 0 {
                listeners.call(.reverse) { $0.logStop(s, old: oldMask, new: newMask) }
            }
        }
    }

    /// `o[i].isSame(as: n[j])`, read in place. QEMU: `flatrange_equal()`.
    @inline(__always)
    private static func sameRange(_ o: [FlatRange], _ i: Int, _ n: [FlatRange], _ j: Int) -> Bool {
        o[i].start == n[j].start && o[i].size == n[j].size && o[i].region === n[j].region
            && o[i].offsetInRegion == n[j].offsetInRegion && o[i].readOnly == n[j].readOnly
    }

    // MARK: Listeners

    /// Adds `listener` and replays the current topology to it inside begin/commit: for every
    /// range a region add (then its coalesced ranges, and log start when it logs), then an
    /// eventfd add for every ioeventfd; under global dirty logging `logGlobalStart` first.
    /// Deliberate differences: the first eventfd listener is replayed the true current
    /// ioeventfds, not a stale array; and coalesced ranges are replayed (QEMU replays none,
    /// so an accelerator attached after the devices would miss them).
    /// QEMU: `memory_listener_register()`, `listener_add_address_space()`.
    public func register(_ listener: any MemoryListener) {
        system.lock.lock()
        defer { system.lock.unlock() }
        system.listeners.insertByPriority(listener)
        listeners.insertByPriority(listener)
        if listener.handlesEventfds && ioeventfdNotifiers == 0 {
            ioeventfdEntries = collectAll()
        }
        listener.begin()
        if system.globalDirtyLogStorage { listener.logGlobalStart() }
        for fr in currentMap.ranges {
            let s = MemoryRegionSection(fr, in: self)
            listener.regionAdd(s)
            coalescedAdd(fr, to: [listener])
            if fr.dirtyLogMask != 0 { listener.logStart(s, old: 0, new: fr.dirtyLogMask) }
        }
        if listener.handlesEventfds {
            for fd in ioeventfdList { listener.eventfdAdd(fd, in: self) }
        }
        listener.commit()
        if listener.handlesEventfds { ioeventfdNotifiers += 1 }
    }

    /// Removes `listener`, first sending it the mirror of registration inside begin/commit:
    /// for every range log stop (when it logs), its coalesced ranges' del and region del, then
    /// eventfd del for every ioeventfd (QEMU's order; the coalesced dels mirror the replay).
    /// QEMU: `memory_listener_unregister()`, `listener_del_address_space()`.
    public func unregister(_ listener: any MemoryListener) {
        system.lock.lock()
        defer { system.lock.unlock() }
        guard let i = listeners.firstIndex(where: { $0 === listener }) else { return }
        if listener.handlesEventfds { ioeventfdNotifiers -= 1 }
        listener.begin()
        for fr in currentMap.ranges {
            let s = MemoryRegionSection(fr, in: self)
            if fr.dirtyLogMask != 0 { listener.logStop(s, old: fr.dirtyLogMask, new: 0) }
            coalescedDel(fr, to: [listener])
            listener.regionDel(s)
        }
        if listener.handlesEventfds {
            for fd in ioeventfdList { listener.eventfdDel(fd, in: self) }
        }
        listener.commit()
        listeners.remove(at: i)
        system.listeners.removeAll { $0 === listener }
    }

    // MARK: Userspace fallback

    /// Whether an accelerator takes this space's ioeventfds in the kernel. While false (the
    /// default), a write matching a region's ioeventfd signals it here instead of calling the
    /// device. Set by the accelerator when it attaches (a `package` setter: clients read it).
    /// QEMU: `kvm_eventfds_enabled()`.
    public package(set) var acceleratorHandlesIoeventfds: Bool {
        get { acceleratorFlag.load(ordering: .acquiring) }
        set { acceleratorFlag.store(newValue, ordering: .releasing) }
    }

    /// How many refused ioeventfds an address space remembers one by one. Each entry is a live
    /// ioeventfd of this space (the accelerator calls `ioeventfdAccepted` when it is deleted,
    /// which forgets it), so the list is bounded by what the devices register and a guest
    /// that keeps moving BARs onto each other only churns it; the cap guards against a leak.
    /// Past it a refusal is counted, not recorded, and logged once: from then on dispatch
    /// checks every write that reaches userspace against the regions' ioeventfds, which stays
    /// correct (a write the kernel took never reaches userspace) but the refusal cannot be
    /// forgotten, since this space can no longer tell which ioeventfd it was.
    public static let refusedIoeventfdLimit = 1024

    /// The accelerator could not take `ioeventfd`: writes matching it are signalled here.
    package func ioeventfdRefused(_ ioeventfd: MemoryRegionIoeventfd) {
        let firstOverflow = refusedList.withLock { list -> Bool in
            defer { refusedCount.store(list.entries.count + list.unrecorded, ordering: .releasing) }
            guard list.entries.count < Self.refusedIoeventfdLimit else {
                list.unrecorded += 1
                return list.unrecorded == 1
            }
            list.entries.append(ioeventfd)
            return false
        }
        if firstOverflow {
            memoryLogger.warning("\(name): more than \(Self.refusedIoeventfdLimit) refused ioeventfds; further refusals are counted, not listed, and userspace checks every write against the ioeventfds")
        }
    }

    /// The accelerator took (or dropped) `ioeventfd` after all: forget an earlier refusal.
    /// Returns whether it had been refused (then the kernel never had it). A refusal past
    /// `refusedIoeventfdLimit` is not found here, so the caller deassigns it in the kernel,
    /// which reports that it never had it.
    @discardableResult
    package func ioeventfdAccepted(_ ioeventfd: MemoryRegionIoeventfd) -> Bool {
        refusedList.withLock { list in
            defer { refusedCount.store(list.entries.count + list.unrecorded, ordering: .releasing) }
            guard let i = list.entries.firstIndex(where: { $0.isSameEntry(ioeventfd) }) else { return false }
            list.entries.remove(at: i)
            return true
        }
    }

    /// The ioeventfds the accelerator refused and userspace signals instead (at most
    /// `refusedIoeventfdLimit`).
    public var refusedIoeventfds: [MemoryRegionIoeventfd] { refusedList.withLock { $0.entries } }

    /// Refusals beyond `refusedIoeventfdLimit`: counted, not listed (0 unless something leaks).
    public var unrecordedRefusals: Int { refusedList.withLock { $0.unrecorded } }

    /// Whether dispatch must check writes against regions' ioeventfds.
    @inline(__always)
    var userspaceSignalsEventfds: Bool {
        !acceleratorFlag.load(ordering: .relaxed) || refusedCount.load(ordering: .relaxed) > 0
    }
}
