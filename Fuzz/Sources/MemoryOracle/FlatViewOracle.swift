import Memory

/// The order a test or fuzz target inserted subregions in, kept independently of the memory
/// core: QEMU places a (re)inserted subregion before every sibling of lower or equal
/// priority, so among equals the latest insertion wins.
public final class RegionInsertionModel {
    private var seq: [ObjectIdentifier: Int] = [:]
    private var counter = 0

    public init() {}

    /// Records that `r` was just added to a container, or moved or re-prioritised in it.
    public func inserted(_ r: MemoryRegion) {
        counter += 1
        seq[ObjectIdentifier(r)] = counter
    }

    /// `subs` in rendering order by this model: priority, then latest insertion.
    public func ordered(_ subs: [MemoryRegion]) -> [MemoryRegion] {
        subs.sorted { a, b in
            if a.priority != b.priority { return a.priority > b.priority }
            return seq[ObjectIdentifier(a), default: 0] > seq[ObjectIdentifier(b), default: 0]
        }
    }
}

/// Who shows at one guest address: the terminating region, the offset in it, and whether the
/// guest may only read there.
public struct OracleOwner: Equatable, Sendable {
    public var region: ObjectIdentifier
    public var offset: UInt64
    public var readOnly: Bool

    public init(region: ObjectIdentifier, offset: UInt64, readOnly: Bool) {
        self.region = region
        self.offset = offset
        self.readOnly = readOnly
    }
}

/// A naive model of QEMU's rendering rules, applied address by address with no flattening:
/// what `FlatView.render` must agree with everywhere. Used by `FlatViewOracleTests` and the
/// memory-dispatch fuzz target. QEMU: `render_memory_region()`.
public enum FlatViewOracle {
    /// Whether `mr` has contents of its own (fills its gaps), by its public kind.
    public static func terminates(_ mr: MemoryRegion) -> Bool {
        switch mr.kind {
        case .ram, .rom, .io: return true
        case .container, .alias: return false
        }
    }

    /// Who owns absolute address `a` under `mr` placed at `base`, clipped to `clip`.
    public static func owner(_ mr: MemoryRegion, base: Int128, _ a: Int128, clip: (Int128, Int128), readOnly: Bool,
                             _ m: RegionInsertionModel) -> OracleOwner? {
        guard mr.isEnabled else { return nil }
        let b = base + Int128(mr.address)
        let lo = max(clip.0, b), hi = min(clip.1, b + Int128(mr.size))
        guard a >= lo, a < hi else { return nil }
        let ro = readOnly || mr.isReadOnly
        if let t = mr.aliasTarget {
            return owner(t, base: b - Int128(t.address) - Int128(mr.aliasOffset), a, clip: (lo, hi), readOnly: ro, m)
        }
        for sub in m.ordered(mr.subregions) {
            if let o = owner(sub, base: b, a, clip: (lo, hi), readOnly: ro, m) { return o }
        }
        guard terminates(mr) else { return nil }
        return OracleOwner(region: ObjectIdentifier(mr), offset: UInt64(a - b), readOnly: ro)
    }

    /// Who owns address `a` of an address space whose root is `root`.
    public static func owner(of a: UInt64, root: MemoryRegion, _ m: RegionInsertionModel) -> OracleOwner? {
        owner(root, base: 0, Int128(a), clip: (0, Int128(1) << 64), readOnly: false, m)
    }

    /// Every address where ownership may change.
    public static func boundaries(_ mr: MemoryRegion, base: Int128, into s: inout Set<Int128>) {
        guard mr.isEnabled else { return }
        let b = base + Int128(mr.address)
        s.insert(b)
        s.insert(b + Int128(mr.size))
        if let t = mr.aliasTarget { boundaries(t, base: b - Int128(t.address) - Int128(mr.aliasOffset), into: &s); return }
        for sub in mr.subregions { boundaries(sub, base: b, into: &s) }
    }

    /// Addresses worth probing in `space`: every boundary of the tree and of the current view,
    /// the byte before each, and the midpoint to the next, within [0, 2^64).
    public static func probes(_ space: AddressSpace) -> [UInt64] {
        var points = Set<Int128>()
        boundaries(space.root, base: 0, into: &points)
        for fr in space.currentMap.ranges { points.insert(Int128(fr.start)); points.insert(Int128(fr.end)) }
        let sorted = points.filter { $0 >= 0 && $0 <= Int128(1) << 64 }.sorted()
        var probes = Set<Int128>()
        for (i, p) in sorted.enumerated() {
            probes.insert(p); probes.insert(p - 1)
            if i + 1 < sorted.count { probes.insert((p + sorted[i + 1]) / 2) }
        }
        return probes.filter { $0 >= 0 && $0 < Int128(1) << 64 }.map { UInt64($0) }.sorted()
    }

    /// The first disagreement between `space`'s flat view and the oracle, or nil: ownership at
    /// every probe, ranges sorted and disjoint, and no two neighbours that could be one range.
    public static func mismatch(_ space: AddressSpace, _ m: RegionInsertionModel) -> String? {
        let view = space.currentMap
        for p in probes(space) {
            let expect = owner(of: p, root: space.root, m)
            var got: OracleOwner?
            if let i = view.lookup(p) {
                let fr = view.ranges[i]
                got = OracleOwner(region: ObjectIdentifier(fr.region), offset: fr.offsetInRegion &+ (p - fr.start), readOnly: fr.readOnly)
            }
            if got != expect { return "address 0x\(String(p, radix: 16)): view says \(String(describing: got)), oracle \(String(describing: expect))" }
        }
        for (a, b) in zip(view.ranges, view.ranges.dropFirst()) {
            if a.end > UInt128(b.start) { return "overlapping ranges at 0x\(String(b.start, radix: 16))" }
            let mergeable = a.end == UInt128(b.start) && a.region === b.region
                && UInt128(a.offsetInRegion) + a.size == UInt128(b.offsetInRegion) && a.readOnly == b.readOnly
            if mergeable { return "unmerged ranges at 0x\(String(b.start, radix: 16))" }
        }
        return nil
    }
}
