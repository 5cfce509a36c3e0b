@testable import Memory

/// The renderer this project had before the O(n log n) one, kept as the judge for large trees:
/// QEMU's algorithm literally — walk the tree, and for each terminating region insert the
/// pieces of its range not yet claimed into a sorted array (`flatview_insert()`), then merge
/// neighbours (`flatview_simplify()`). Quadratic, so fine for tests of a few thousand regions.
/// The production renderer must produce exactly these ranges.
enum ReferenceRenderer {
    struct Piece {
        var start: Int128
        var end: Int128
        var region: MemoryRegion
        var offsetInRegion: Int128
        var readOnly: Bool
        var dirtyLogMask: UInt8
    }

    static func render(root: MemoryRegion, globalDirtyLog: Bool = false) -> [FlatRange] {
        var pieces: [Piece] = []
        render(root, base: 0, clipStart: 0, clipEnd: Int128(1) << 64, readOnly: false, global: globalDirtyLog, into: &pieces)
        return simplified(pieces)
    }

    private static func render(_ mr: MemoryRegion, base: Int128, clipStart: Int128, clipEnd: Int128, readOnly: Bool,
                               global: Bool, into pieces: inout [Piece]) {
        guard mr.isEnabled else { return }
        let base = base + Int128(mr.address)
        let start = max(clipStart, base)
        let end = min(clipEnd, base + Int128(mr.size))
        guard start < end else { return }
        let readOnly = readOnly || mr.isReadOnly
        if let target = mr.aliasTarget {
            render(target, base: base - Int128(target.address) - Int128(mr.aliasOffset), clipStart: start, clipEnd: end,
                   readOnly: readOnly, global: global, into: &pieces)
            return
        }
        for sub in mr.subregions {   // QEMU's order
            render(sub, base: base, clipStart: start, clipEnd: end, readOnly: readOnly, global: global, into: &pieces)
        }
        guard mr.terminates else { return }
        var mask = mr.dirtyLogMaskStorage
        if global, mr.isRAM { mask |= DirtyMemoryClient.migration.mask }
        // Fill the gaps of [start, end), inserting in address order.
        var at = start, offset = start - base
        var lo = 0, hi = pieces.count
        while lo < hi {
            let mid = (lo + hi) / 2
            if pieces[mid].end <= at { lo = mid + 1 } else { hi = mid }
        }
        var i = lo
        while at < end {
            if i < pieces.count, pieces[i].start <= at {
                let skip = min(end, pieces[i].end) - at
                at += skip
                offset += skip
                i += 1
                continue
            }
            let gapEnd = i < pieces.count ? min(end, pieces[i].start) : end
            pieces.insert(Piece(start: at, end: gapEnd, region: mr, offsetInRegion: offset, readOnly: readOnly,
                                dirtyLogMask: mask), at: i)
            i += 1
            offset += gapEnd - at
            at = gapEnd
        }
    }

    private static func simplified(_ pieces: [Piece]) -> [FlatRange] {
        var out: [FlatRange] = []
        var k = 0
        while k < pieces.count {
            var p = pieces[k]
            var j = k + 1
            while j < pieces.count {
                let n = pieces[j]
                guard n.start == p.end, n.region === p.region, n.offsetInRegion == p.offsetInRegion + (p.end - p.start),
                      n.readOnly == p.readOnly, n.dirtyLogMask == p.dirtyLogMask else { break }
                p.end = n.end
                j += 1
            }
            out.append(FlatRange(start: UInt64(p.start), size: UInt128(p.end - p.start), region: p.region,
                                 offsetInRegion: UInt64(truncatingIfNeeded: p.offsetInRegion), readOnly: p.readOnly,
                                 dirtyLogMask: p.dirtyLogMask))
            k = j
        }
        return out
    }

    /// Whether two range lists are identical field by field; the first difference otherwise.
    static func difference(_ a: [FlatRange], _ b: [FlatRange]) -> String? {
        guard a.count == b.count else { return "\(a.count) ranges vs \(b.count)" }
        for (x, y) in zip(a, b) {
            let same = x.start == y.start && x.size == y.size && x.region === y.region && x.offsetInRegion == y.offsetInRegion
                && x.readOnly == y.readOnly && x.dirtyLogMask == y.dirtyLogMask
            if !same {
                return "at 0x\(String(x.start, radix: 16)): \(x.region.name)+0x\(String(x.offsetInRegion, radix: 16)) size 0x\(String(x.size, radix: 16)) vs "
                    + "0x\(String(y.start, radix: 16)) \(y.region.name)+0x\(String(y.offsetInRegion, radix: 16)) size 0x\(String(y.size, radix: 16))"
            }
        }
        return nil
    }
}
