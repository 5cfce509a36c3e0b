/// One maximal piece of an address space owned by one region: `[start, start + size)` maps
/// to `region` at `offsetInRegion`. QEMU: `FlatRange`.
public struct FlatRange: Sendable {
    /// First address of the range in the address space. QEMU: `fr->addr.start`.
    public let start: UInt64
    /// Length in bytes, up to 2^64 (a range covering the whole space). QEMU: `fr->addr.size`.
    public internal(set) var size: UInt128
    /// The region whose contents show here (for an alias, the region it leads to).
    /// QEMU: `fr->mr`.
    public let region: MemoryRegion
    /// The offset in `region` that `start` shows. QEMU: `fr->offset_in_region`.
    public let offsetInRegion: UInt64
    /// Read-only to the guest here (ROM, or under a read-only container/alias).
    /// QEMU: `fr->readonly`.
    public let readOnly: Bool
    /// The dirty-log clients (``DirtyMemoryClient/mask`` bits) logging writes here, as rendered.
    /// QEMU: `fr->dirty_log_mask`.
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
    /// Sorted by `start`, non-overlapping; addresses no range covers are unassigned.
    /// QEMU: `view->ranges`.
    public let ranges: [FlatRange]

    init(ranges: [FlatRange]) { self.ranges = ranges }

    static let empty = FlatView(ranges: [])

    /// Index in ``ranges`` of the range containing `address`, by binary search; nil for an
    /// unassigned address. QEMU: `flatview_lookup()`.
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
}
