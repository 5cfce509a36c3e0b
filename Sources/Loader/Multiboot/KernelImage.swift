/// One piece of a kernel to place in guest RAM: `fileSize` bytes from `fileOffset` copied to
/// `address`, then zeros up to `memorySize` (the BSS).
struct LoadSegment: Equatable {
    /// How messages name it, e.g. "segment 1" (ELF program header index) or "a.out image".
    var label: String
    var address: UInt64
    var fileOffset: UInt64
    var fileSize: UInt64
    var memorySize: UInt64

    var end: UInt64 { address + memorySize }
}

/// A parsed kernel ready to be placed: what goes where and where execution starts. Parsers
/// guarantee each segment's file range lies in the file, `fileSize <= memorySize`, and that
/// `address + memorySize` does not overflow.
struct KernelImage {
    var segments: [LoadSegment]
    var entry: UInt64

    /// The first byte past the highest loaded address.
    var end: UInt64 { segments.map(\.end).max() ?? 0 }
    /// The lowest loaded address.
    var start: UInt64 { segments.map(\.address).min() ?? 0 }

    /// Refuses segments above 4 GiB (unreachable in 32-bit protected mode), outside the RAM
    /// the machine declares usable, or overlapping each other.
    func validate(path: String, usableRAM: [Range<UInt64>]) throws(LoaderError) {
        guard !segments.isEmpty else { throw LoaderError(path, "kernel has no loadable segments") }
        for s in segments {
            guard s.end <= 1 << 32 else {
                throw LoaderError(path, "\(s.label) \(hexRange(s.address, s.end)) lies above 4 GiB")
            }
            guard isUsable(s.address, s.end, in: usableRAM) else {
                throw LoaderError(path, "\(s.label) \(hexRange(s.address, s.end)) lies outside guest RAM")
            }
        }
        let sorted = segments.sorted { $0.address < $1.address }
        for (a, b) in zip(sorted, sorted.dropFirst()) where b.address < a.end {
            throw LoaderError(path, "\(a.label) \(hexRange(a.address, a.end)) overlaps "
                + "\(b.label) \(hexRange(b.address, b.end))")
        }
    }
}

/// Whether `[start, end)` lies entirely inside one of `ranges` (an empty range always does).
func isUsable(_ start: UInt64, _ end: UInt64, in ranges: [Range<UInt64>]) -> Bool {
    start == end || ranges.contains { $0.lowerBound <= start && end <= $0.upperBound }
}
