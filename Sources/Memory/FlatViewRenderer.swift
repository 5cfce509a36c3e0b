/// Flattening a memory tree in O(n log n).
///
/// QEMU renders by walking the tree and, for every terminating region it meets, inserting the
/// pieces of that region's range not yet claimed into a sorted array (`flatview_insert`): each
/// insertion shifts the array, so a tree of n regions costs O(n²) — 8 s for 100 000 regions.
/// The walk here is the same (same order, same clipping, same alias translation), but it only
/// lists each terminating region's *claim*: its clipped range, in the order QEMU would fill it.
/// QEMU gives each address to the first region in that order whose range covers it (later
/// regions only fill what is still unclaimed), so one sweep over the claims sorted by start,
/// keeping the covering claims in a heap ordered by claim order, assigns every address the
/// same owner in O(n log n). Neighbouring pieces are merged as `flatview_simplify()` merges
/// them; since both merge maximally, the ranges are exactly QEMU's.
extension FlatView {
    /// Renders the tree under `root` (placed at address 0) as QEMU does: a region's subregions
    /// in list order (priority, then newest) claim space first, then the region itself fills
    /// the gaps if it has contents; containers clip; aliases translate; disabled regions
    /// vanish. Adjacent compatible ranges are then merged. With `globalDirtyLog`, RAM ranges
    /// also log for the migration client.
    /// QEMU: `generate_memory_topology()`, `render_memory_region()`, `flatview_simplify()`.
    /// `expected` sizes the buffers (the previous view's range count is a good guess).
    static func render(root: MemoryRegion, globalDirtyLog: Bool = false, expected: Int = 0) -> FlatView {
        var collector = ClaimCollector(globalDirtyLog: globalDirtyLog)
        collector.claims.reserveCapacity(expected)
        collector.owners.append([root])
        collector.visit(root, owner: 0, index: 0, base: 0, clipStart: 0, clipEnd: Int128(1) << 64, readOnly: false)
        return FlatView(ranges: sweep(collector.claims, collector.owners))
    }

    /// A terminating region's clipped range `[start, end)`, shown with its byte 0 at `base`.
    /// The region is `owners[owner][index]`: claims hold no reference of their own, so
    /// listing and dropping a hundred thousand of them touches no region's reference count.
    struct Claim {
        var start: Int128
        var end: Int128
        var base: Int128
        var owner: Int32
        var index: Int32
        var readOnly: Bool
        var dirtyLogMask: UInt8
    }

    /// The walk of `render_memory_region()`, listing claims in fill order.
    struct ClaimCollector {
        var claims: [Claim] = []
        /// The sibling arrays walked (one reference each), and one-element arrays for the root
        /// and alias targets.
        var owners: [[MemoryRegion]] = []
        let globalDirtyLog: Bool

        init(globalDirtyLog: Bool) { self.globalDirtyLog = globalDirtyLog }

        mutating func visit(_ mr: MemoryRegion, owner: Int32, index: Int32, base: Int128, clipStart: Int128, clipEnd: Int128,
                            readOnly: Bool) {
            guard mr.enabledStorage else { return }
            let base = base + Int128(mr.addressStorage)
            let start = max(clipStart, base)
            let end = min(clipEnd, base + Int128(mr.sizeStorage))
            guard start < end else { return }
            let readOnly = readOnly || mr.readOnlyStorage
            if let target = mr.aliasTargetStorage {
                let targetBase = base - Int128(target.addressStorage) - Int128(mr.aliasOffsetStorage)
                owners.append([target])
                visit(target, owner: Int32(owners.count - 1), index: 0, base: targetBase, clipStart: start, clipEnd: end,
                      readOnly: readOnly)
                return
            }
            let subs = mr.subregionStack
            if !subs.isEmpty {
                owners.append(subs)
                let o = Int32(owners.count - 1)
                // QEMU's list order is the stack read backwards.
                var k = subs.count
                while k > 0 {
                    k -= 1
                    visit(subs[k], owner: o, index: Int32(k), base: base, clipStart: start, clipEnd: end, readOnly: readOnly)
                }
            }
            guard mr.terminates else { return }
            var mask = mr.dirtyLogMaskStorage
            if globalDirtyLog, mr.dirtyBitmap != nil { mask |= DirtyMemoryClient.migration.mask }
            claims.append(Claim(start: start, end: end, base: base, owner: owner, index: index, readOnly: readOnly,
                                dirtyLogMask: mask))
        }
    }

    /// Gives every address to the earliest claim covering it and merges neighbours that
    /// continue each other (QEMU: `can_merge()`).
    static func sweep(_ claims: [Claim], _ owners: [[MemoryRegion]]) -> [FlatRange] {
        let m = claims.count
        guard m > 0 else { return [] }
        // Claims by start; at equal starts, by claim order (the heap decides anyway).
        // SAFETY: writes exactly the m elements of the m-element buffer, then declares them.
        var order = unsafe [Int32](unsafeUninitializedCapacity: m) { buffer, count in
            for i in 0..<m { unsafe buffer[i] = Int32(truncatingIfNeeded: i) }
            count = m
        }
        var sorted = true
        for i in 1..<m where claims[i - 1].start > claims[i].start { sorted = false; break }
        if !sorted {
            order.sort { a, b in
                let sa = claims[Int(a)].start, sb = claims[Int(b)].start
                return sa != sb ? sa < sb : a < b
            }
        }

        var heap = RankHeap()
        var out: [FlatRange] = []
        out.reserveCapacity(m)
        var next = 0              // next claim (in `order`) to enter the heap
        var pos: Int128 = 0
        while true {
            while let top = heap.top, claims[Int(top)].end <= pos { heap.pop() }
            guard let top = heap.top else {
                // Nothing covers `pos`: jump to the next claim's start.
                guard next < m else { break }
                pos = claims[Int(order[next])].start
                while next < m, claims[Int(order[next])].start <= pos { heap.push(order[next]); next += 1 }
                continue
            }
            let t = Int(top)
            let nextStart = next < m ? claims[Int(order[next])].start : Int128(1) << 64
            let end = min(claims[t].end, nextStart)
            if end > pos {
                emit(&out, claims, t, owners, from: pos, to: end)
                pos = end
            }
            while next < m, claims[Int(order[next])].start <= pos { heap.push(order[next]); next += 1 }
        }
        return out
    }

    /// Appends `[from, to)` of claim `t`, extending the last range when it continues it.
    /// (Fields are read in place: copying a claim or range out costs reference counting.)
    @inline(__always)
    private static func emit(_ out: inout [FlatRange], _ claims: [Claim], _ t: Int, _ owners: [[MemoryRegion]],
                             from: Int128, to: Int128) {
        let offset = UInt64(truncatingIfNeeded: from - claims[t].base)
        let owner = Int(claims[t].owner), index = Int(claims[t].index)
        let n = out.count
        if n > 0, out[n - 1].end == UInt128(from), out[n - 1].region === owners[owner][index],
           UInt128(out[n - 1].offsetInRegion) + out[n - 1].size == UInt128(offset),
           out[n - 1].readOnly == claims[t].readOnly, out[n - 1].dirtyLogMask == claims[t].dirtyLogMask {
            out[n - 1].size += UInt128(to - from)
            return
        }
        out.append(FlatRange(start: UInt64(from), size: UInt128(to - from), region: owners[owner][index],
                             offsetInRegion: offset, readOnly: claims[t].readOnly, dirtyLogMask: claims[t].dirtyLogMask))
    }

    /// A binary min-heap of claim ranks: the earliest claim among those covering the sweep.
    struct RankHeap {
        private var items: [Int32] = []

        var top: Int32? { items.first }

        mutating func push(_ rank: Int32) {
            items.append(rank)
            var i = items.count - 1
            while i > 0 {
                let parent = (i - 1) / 2
                guard items[i] < items[parent] else { break }
                items.swapAt(i, parent)
                i = parent
            }
        }

        mutating func pop() {
            let last = items.removeLast()
            guard !items.isEmpty else { return }
            items[0] = last
            var i = 0
            let n = items.count
            while true {
                let l = 2 * i + 1, r = l + 1
                var smallest = i
                if l < n, items[l] < items[smallest] { smallest = l }
                if r < n, items[r] < items[smallest] { smallest = r }
                guard smallest != i else { break }
                items.swapAt(i, smallest)
                i = smallest
            }
        }
    }
}
