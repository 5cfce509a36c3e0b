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
    static func render(root: MemoryRegion, globalDirtyLog: Bool = false) -> FlatView {
        var collector = ClaimCollector(globalDirtyLog: globalDirtyLog)
        collector.visit(root, base: 0, clipStart: 0, clipEnd: Int128(1) << 64, readOnly: false)
        return FlatView(ranges: sweep(collector.claims))
    }

    /// A terminating region's clipped range `[start, end)`, shown with its byte 0 at `base`.
    struct Claim {
        var start: Int128
        var end: Int128
        var base: Int128
        var region: MemoryRegion
        var readOnly: Bool
        var dirtyLogMask: UInt8
    }

    /// The walk of `render_memory_region()`, listing claims in fill order.
    struct ClaimCollector {
        var claims: [Claim] = []
        let globalDirtyLog: Bool

        init(globalDirtyLog: Bool) { self.globalDirtyLog = globalDirtyLog }

        mutating func visit(_ mr: MemoryRegion, base: Int128, clipStart: Int128, clipEnd: Int128, readOnly: Bool) {
            guard mr.enabledStorage else { return }
            let base = base + Int128(mr.addressStorage)
            let start = max(clipStart, base)
            let end = min(clipEnd, base + Int128(mr.sizeStorage))
            guard start < end else { return }
            let readOnly = readOnly || mr.readOnlyStorage
            if let target = mr.aliasTargetStorage {
                let targetBase = base - Int128(target.addressStorage) - Int128(mr.aliasOffsetStorage)
                visit(target, base: targetBase, clipStart: start, clipEnd: end, readOnly: readOnly)
                return
            }
            // QEMU's list order is the stack read backwards.
            let subs = mr.subregionStack
            var k = subs.count
            while k > 0 {
                k -= 1
                visit(subs[k], base: base, clipStart: start, clipEnd: end, readOnly: readOnly)
            }
            guard mr.terminates else { return }
            var mask = mr.dirtyLogMaskStorage
            if globalDirtyLog, mr.dirtyBitmap != nil { mask |= DirtyMemoryClient.migration.mask }
            claims.append(Claim(start: start, end: end, base: base, region: mr, readOnly: readOnly, dirtyLogMask: mask))
        }
    }

    /// Gives every address to the earliest claim covering it and merges neighbours that
    /// continue each other (QEMU: `can_merge()`).
    static func sweep(_ claims: [Claim]) -> [FlatRange] {
        let m = claims.count
        guard m > 0 else { return [] }
        // Claims by start; at equal starts, by claim order (the heap decides anyway).
        var order = [Int32](unsafeUninitializedCapacity: m) { buffer, count in
            for i in 0..<m { buffer[i] = Int32(truncatingIfNeeded: i) }
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
            let c = claims[Int(top)]
            let nextStart = next < m ? claims[Int(order[next])].start : Int128(1) << 64
            let end = min(c.end, nextStart)
            if end > pos {
                emit(&out, c, from: pos, to: end)
                pos = end
            }
            while next < m, claims[Int(order[next])].start <= pos { heap.push(order[next]); next += 1 }
        }
        return out
    }

    /// Appends `[from, to)` of claim `c`, extending the last range when it continues it.
    @inline(__always)
    private static func emit(_ out: inout [FlatRange], _ c: Claim, from: Int128, to: Int128) {
        let offset = UInt64(truncatingIfNeeded: from - c.base)
        if let last = out.last, last.end == UInt128(from), last.region === c.region,
           UInt128(last.offsetInRegion) + last.size == UInt128(offset),
           last.readOnly == c.readOnly, last.dirtyLogMask == c.dirtyLogMask {
            out[out.count - 1] = FlatRange(start: last.start, size: last.size + UInt128(to - from), region: c.region,
                                           offsetInRegion: last.offsetInRegion, readOnly: c.readOnly,
                                           dirtyLogMask: c.dirtyLogMask)
            return
        }
        out.append(FlatRange(start: UInt64(from), size: UInt128(to - from), region: c.region, offsetInRegion: offset,
                             readOnly: c.readOnly, dirtyLogMask: c.dirtyLogMask))
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
