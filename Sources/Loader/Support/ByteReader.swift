/// Bounds-checked little-endian reads from a file image. Every read returns `nil` rather than
/// trapping when the file is too short, so parsers turn truncation into a `LoaderError`.
struct ByteReader {
    let bytes: [UInt8]

    var count: UInt64 { UInt64(bytes.count) }

    /// Whether `[offset, offset + length)` lies inside the bytes (overflow-safe).
    func contains(offset: UInt64, length: UInt64) -> Bool {
        offset <= count && length <= count - offset
    }

    /// The little-endian integer at `offset`, or `nil` if it runs past the end.
    func read<T: FixedWidthInteger>(_ type: T.Type, at offset: UInt64) -> T? {
        let size = UInt64(MemoryLayout<T>.size)
        guard contains(offset: offset, length: size) else { return nil }
        var value = T.zero
        let base = Int(offset)
        for i in 0..<Int(size) { value |= T(truncatingIfNeeded: bytes[base + i]) << (8 * i) }
        return value
    }
}
