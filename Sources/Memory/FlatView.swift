/// One maximal piece of an address space owned by one region: `[start, start + size)` maps
/// to `region` at `offsetInRegion`. QEMU: `FlatRange`.
public struct FlatRange: Sendable {
    public let start: UInt64
    /// Up to 2^64 (a range covering the whole space).
    public let size: UInt128
    public let region: MemoryRegion
    public let offsetInRegion: UInt64
    /// Read-only to the guest here (ROM, or under a read-only container/alias).
    public let readOnly: Bool
    public let dirtyLogMask: UInt8

    /// One past the last address (may be 2^64).
    public var end: UInt128 { UInt128(start) + size }

    /// Same region, same place, same attributes. QEMU: `flatrange_equal()`.
    func isSame(as b: FlatRange) -> Bool {
        region === b.region && start == b.start && size == b.size && offsetInRegion == b.offsetInRegion
            && readOnly == b.readOnly
    }
}

/// An address space's memory tree flattened into sorted, non-overlapping ranges: what the
/// guest sees at each address. Immutable; the address space swaps in a new one atomically.
/// QEMU: `FlatView`.
public final class FlatView: Sendable {
    /// Sorted by `start`, non-overlapping.
    public let ranges: [FlatRange]

    init(ranges: [FlatRange]) { self.ranges = ranges }

    static let empty = FlatView(ranges: [])

    /// Index of the range containing `address`, by binary search.
    @inline(__always)
    public func lookup(_ address: UInt64) -> Int? {
        var lo = 0, hi = ranges.count
        while lo < hi {
            let mid = (lo + hi) / 2
            if ranges[mid].start <= address { lo = mid + 1 } else { hi = mid }
        }
        guard lo > 0 else { return nil }
        let r = ranges[lo - 1]
        return UInt128(address) < r.end ? lo - 1 : nil
    }

    /// The first range starting after `address`, if any (bounds an unassigned gap).
    func nextStart(after address: UInt64) -> UInt64? {
        var lo = 0, hi = ranges.count
        while lo < hi {
            let mid = (lo + hi) / 2
            if ranges[mid].start <= address { lo = mid + 1 } else { hi = mid }
        }
        return lo < ranges.count ? ranges[lo].start : nil
    }

    /// Renders the tree under `root` (placed at address 0) as QEMU does: a region's subregions
    /// in list order (priority, then newest) claim space first, then the region itself fills
    /// the gaps if it has contents; containers clip; aliases translate; disabled regions
    /// vanish. Adjacent compatible ranges are then merged.
    /// QEMU: `generate_memory_topology()`, `render_memory_region()`, `flatview_simplify()`.
    static func render(root: MemoryRegion) -> FlatView {
        var builder = Builder()
        builder.render(root, base: 0, clipStart: 0, clipEnd: Int128(1) << 64, readOnly: false)
        return FlatView(ranges: builder.simplified())
    }

    private struct Piece {
        var start: Int128
        var end: Int128
        var region: MemoryRegion
        var offsetInRegion: Int128
        var readOnly: Bool
        var dirtyLogMask: UInt8
    }

    private struct Builder {
        var pieces: [Piece] = []

        mutating func render(_ mr: MemoryRegion, base: Int128, clipStart: Int128, clipEnd: Int128, readOnly: Bool) {
            guard mr.enabledStorage else { return }
            let base = base + Int128(mr.addressStorage)
            let start = max(clipStart, base)
            let end = min(clipEnd, base + Int128(mr.sizeStorage))
            guard start < end else { return }
            let readOnly = readOnly || mr.readOnlyStorage
            if case .alias(let target) = mr.kind {
                let targetBase = base - Int128(target.addressStorage) - Int128(mr.aliasOffsetStorage)
                render(target, base: targetBase, clipStart: start, clipEnd: end, readOnly: readOnly)
                return
            }
            for sub in mr.subregionList {
                render(sub, base: base, clipStart: start, clipEnd: end, readOnly: readOnly)
            }
            guard mr.terminates else { return }
            fillGaps(mr, from: start, to: end, offset: start - base, readOnly: readOnly)
        }

        /// Inserts pieces of `mr` wherever `[start, end)` is not yet claimed.
        private mutating func fillGaps(_ mr: MemoryRegion, from start: Int128, to end: Int128, offset: Int128, readOnly: Bool) {
            var base = start
            var offset = offset
            // First existing piece that ends after `base`.
            var lo = 0, hi = pieces.count
            while lo < hi {
                let mid = (lo + hi) / 2
                if pieces[mid].end <= base { lo = mid + 1 } else { hi = mid }
            }
            var i = lo
            while base < end {
                if i < pieces.count, pieces[i].start <= base {
                    // Claimed already: skip over it.
                    let skip = min(end, pieces[i].end) - base
                    base += skip
                    offset += skip
                    i += 1
                    continue
                }
                let gapEnd = i < pieces.count ? min(end, pieces[i].start) : end
                pieces.insert(Piece(start: base, end: gapEnd, region: mr, offsetInRegion: offset,
                                    readOnly: readOnly, dirtyLogMask: mr.dirtyLogMaskStorage), at: i)
                i += 1
                offset += gapEnd - base
                base = gapEnd
            }
        }

        /// Merges neighbours that continue each other. QEMU: `flatview_simplify()`.
        func simplified() -> [FlatRange] {
            var out: [FlatRange] = []
            out.reserveCapacity(pieces.count)
            var k = 0
            while k < pieces.count {
                var p = pieces[k]
                var j = k + 1
                while j < pieces.count {
                    let n = pieces[j]
                    guard n.start == p.end, n.region === p.region,
                          n.offsetInRegion == p.offsetInRegion + (p.end - p.start),
                          n.readOnly == p.readOnly, n.dirtyLogMask == p.dirtyLogMask else { break }
                    p.end = n.end
                    j += 1
                }
                out.append(FlatRange(start: UInt64(p.start), size: UInt128(p.end - p.start), region: p.region,
                                     offsetInRegion: UInt64(truncatingIfNeeded: p.offsetInRegion),
                                     readOnly: p.readOnly, dirtyLogMask: p.dirtyLogMask))
                k = j
            }
            return out
        }
    }
}
