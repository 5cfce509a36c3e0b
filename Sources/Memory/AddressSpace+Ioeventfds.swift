/// One absolute ioeventfd of an address space, with the flat range it came from (its region
/// and start), so the ranges a commit changed can take their own entries back out.
struct CollectedIoeventfd {
    var fd: MemoryRegionIoeventfd
    let region: ObjectIdentifier
    let rangeStart: UInt64
}

/// An address space's ioeventfds: collected from the flat view, diffed against what listeners
/// were last told, one `eventfdAdd`/`eventfdDel` per entry that changed.
///
/// QEMU recollects every ioeventfd of the space and merges the whole old and new arrays on
/// every commit (`address_space_update_ioeventfds()`), O(n) even when one BAR moved or one
/// queue started. Here a commit that changed few ranges (the usual case) is incremental: the
/// entries of the flat ranges that went away, and of ranges whose region's ioeventfds changed,
/// are taken out (found by address and origin), the entries of the ranges that came in are
/// collected, and only those two small sets are diffed. The listener calls are exactly those
/// of QEMU's merge pass: the merge of the two sorted arrays only ever reports the entries in
/// which they differ, in key order, and those are the entries of the two small sets that do
/// not cancel out. A large change (a machine's build) takes the full path.
extension AddressSpace {
    /// Beyond this many changed ranges a commit recollects everything.
    static let incrementalRangeLimit = 64

    /// The ioeventfds the current view implies: every region's ioeventfds translated to
    /// absolute addresses by each flat range showing that region, kept when they intersect
    /// the range (not clipped). QEMU: the collection in `address_space_update_ioeventfds()`.
    func collectIoeventfds() -> [MemoryRegionIoeventfd] { collectAll().map(\.fd) }

    /// The absolute ioeventfds announced to listeners, sorted.
    var ioeventfdList: [MemoryRegionIoeventfd] { ioeventfdEntries.map(\.fd) }

    /// Every entry of the current view, sorted (stably: QEMU relies on flat-range order, which
    /// an ioeventfd reaching into a range from its left breaks, and the merge needs sorted
    /// input; an already sorted collection — the common case — is not re-sorted).
    func collectAll() -> [CollectedIoeventfd] {
        var out: [CollectedIoeventfd] = []
        for fr in currentMap.ranges { contributions(of: fr, into: &out) }
        return Self.sortedStably(out)
    }

    /// The entries `fr` shows: its region's ioeventfds moved to absolute addresses, kept when
    /// they intersect the range.
    func contributions(of fr: FlatRange, into out: inout [CollectedIoeventfd]) {
        let fds = fr.region.ioeventfdList
        guard !fds.isEmpty else { return }
        let shift = Int128(fr.start) - Int128(fr.offsetInRegion)
        let rangeStart = Int128(fr.start), rangeEnd = Int128(fr.end)
        let id = ObjectIdentifier(fr.region)
        for fd in fds {
            let start = Int128(fd.start) + shift
            guard start >= 0, start < Int128(1) << 64 else { continue }
            let fdEnd = start + Int128(fd.size)
            let intersects = (rangeStart >= start && rangeStart < fdEnd) || (start >= rangeStart && start < rangeEnd)
            guard intersects else { continue }
            var abs = fd
            abs.start = UInt64(start)
            out.append(CollectedIoeventfd(fd: abs, region: id, rangeStart: fr.start))
        }
    }

    static func sortedStably(_ a: [CollectedIoeventfd]) -> [CollectedIoeventfd] {
        var sorted = true
        for i in a.indices.dropFirst() where a[i].fd.isOrderedBefore(a[i - 1].fd) { sorted = false; break }
        if sorted { return a }
        return a.enumerated().sorted { l, r in
            if l.element.fd.isOrderedBefore(r.element.fd) { return true }
            if r.element.fd.isOrderedBefore(l.element.fd) { return false }
            return l.offset < r.offset
        }.map(\.element)
    }

    /// Brings the ioeventfds up to date after a commit and tells eventfd listeners exactly
    /// what changed (skipped while none is registered). `change` is what the view swap
    /// changed (nil: the view did not change); `changedRegions` are the regions whose own
    /// ioeventfds changed since the last update. QEMU: `address_space_update_ioeventfds()`.
    func updateIoeventfds(after change: TopologyChange?, changedRegions: [MemoryRegion]) {
        guard ioeventfdNotifiers > 0 else { return }
        var out = change?.deleted ?? []
        var into = change?.added ?? []
        if !changedRegions.isEmpty, changedRegions.count <= Self.incrementalRangeLimit {
            // Ranges showing such a region that survived the swap: their entries change too.
            // (Compared in place by identity: reading a range out would touch its region.)
            let ranges = currentMap.ranges
            let addedStarts = into.map(\.start)
            var i = 0
            while i < ranges.count, out.count + into.count <= Self.incrementalRangeLimit {
                if changedRegions.contains(where: { $0 === ranges[i].region }), !addedStarts.contains(ranges[i].start) {
                    out.append(ranges[i])
                    into.append(ranges[i])
                }
                i += 1
            }
        } else if !changedRegions.isEmpty {
            out.append(contentsOf: currentMap.ranges)   // too many: take the full path
        }
        guard out.count + into.count <= Self.incrementalRangeLimit else {
            let new = collectAll()
            addDelIoeventfds(new: new.map(\.fd), old: ioeventfdEntries.map(\.fd))
            ioeventfdEntries = new
            return
        }
        guard !out.isEmpty || !into.isEmpty else { return }

        // Entries leaving: those whose origin is one of the ranges going out.
        var leaving = Set<Int>()
        for fr in out { entryIndices(from: fr, into: &leaving) }
        let removed = leaving.sorted()
        var arriving: [CollectedIoeventfd] = []
        for fr in into { contributions(of: fr, into: &arriving) }
        arriving = Self.sortedStably(arriving)
        addDelIoeventfds(new: arriving.map(\.fd), old: Self.sortedStably(removed.map { ioeventfdEntries[$0] }).map(\.fd))

        if removed.count + arriving.count <= 32 {
            for i in removed.reversed() { ioeventfdEntries.remove(at: i) }
            for e in arriving { ioeventfdEntries.insert(e, at: upperBound(e.fd)) }
        } else {
            ioeventfdEntries = Self.merging(ioeventfdEntries, without: removed, with: arriving)
        }
    }

    /// Indices of the entries that came from flat range `fr`: their starts lie in
    /// `[fr.start - 7, fr.end)` (an ioeventfd of at most 8 bytes reaching in from the left, or
    /// one starting inside), found by binary search, then matched by origin.
    private func entryIndices(from fr: FlatRange, into set: inout Set<Int>) {
        let low = fr.start >= 7 ? fr.start - 7 : 0
        var lo = 0, hi = ioeventfdEntries.count
        while lo < hi {
            let mid = (lo + hi) / 2
            if ioeventfdEntries[mid].fd.start < low { lo = mid + 1 } else { hi = mid }
        }
        let id = ObjectIdentifier(fr.region)
        var i = lo
        while i < ioeventfdEntries.count, UInt128(ioeventfdEntries[i].fd.start) < fr.end {
            let e = ioeventfdEntries[i]
            if e.region == id, e.rangeStart == fr.start { set.insert(i) }
            i += 1
        }
    }

    /// Where `fd` goes in the sorted entries: after every entry not ordered after it.
    private func upperBound(_ fd: MemoryRegionIoeventfd) -> Int {
        var lo = 0, hi = ioeventfdEntries.count
        while lo < hi {
            let mid = (lo + hi) / 2
            if fd.isOrderedBefore(ioeventfdEntries[mid].fd) { hi = mid } else { lo = mid + 1 }
        }
        return lo
    }

    /// `entries` without the (ascending) indices `removed`, with the sorted `added` merged in
    /// after equal entries: one linear pass.
    static func merging(_ entries: [CollectedIoeventfd], without removed: [Int], with added: [CollectedIoeventfd]) -> [CollectedIoeventfd] {
        var out: [CollectedIoeventfd] = []
        out.reserveCapacity(entries.count - removed.count + added.count)
        var r = 0, a = 0
        for (i, e) in entries.enumerated() {
            if r < removed.count, removed[r] == i { r += 1; continue }
            while a < added.count, added[a].fd.isOrderedBefore(e.fd) { out.append(added[a]); a += 1 }
            out.append(e)
        }
        while a < added.count { out.append(added[a]); a += 1 }
        return out
    }

    /// One merge pass over the old and new arrays: `eventfdDel` (Forward) for entries only in
    /// the old, `eventfdAdd` (Reverse) for entries only in the new.
    /// QEMU: `address_space_add_del_ioeventfds()`.
    func addDelIoeventfds(new: [MemoryRegionIoeventfd], old: [MemoryRegionIoeventfd]) {
        var iold = 0, inew = 0
        while iold < old.count || inew < new.count {
            if iold < old.count, inew == new.count || old[iold].isOrderedBefore(new[inew]) {
                let fd = old[iold]
                listeners.call(.forward) { if $0.handlesEventfds { $0.eventfdDel(fd, in: self) } }
                iold += 1
            } else if inew < new.count, iold == old.count || new[inew].isOrderedBefore(old[iold]) {
                let fd = new[inew]
                listeners.call(.reverse) { if $0.handlesEventfds { $0.eventfdAdd(fd, in: self) } }
                inew += 1
            } else {
                iold += 1
                inew += 1
            }
        }
    }
}
