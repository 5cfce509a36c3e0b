/// Builds a little-endian binary structure (ACPI table, Multiboot information) in host memory
/// before it is copied into the guest in one `GuestMemory.write`.
struct ByteWriter {
    private(set) var bytes: [UInt8] = []

    var count: Int { bytes.count }

    mutating func append<T: FixedWidthInteger>(_ value: T) {
        for i in 0..<MemoryLayout<T>.size { bytes.append(UInt8(truncatingIfNeeded: value >> (8 * i))) }
    }

    mutating func append(bytes more: some Sequence<UInt8>) { bytes.append(contentsOf: more) }

    /// Appends `text` as ASCII, cut or padded with spaces to exactly `width` bytes (ACPI IDs).
    mutating func append(ascii text: String, width: Int) {
        var field = Array(text.utf8.prefix(width))
        field += [UInt8](repeating: 0x20, count: width - field.count)
        bytes.append(contentsOf: field)
    }

    /// Appends `text` as UTF-8 followed by a NUL terminator (C string).
    mutating func append(cString text: String) {
        bytes.append(contentsOf: text.utf8)
        bytes.append(0)
    }

    mutating func appendZeros(_ n: Int) { bytes += [UInt8](repeating: 0, count: n) }

    /// Overwrites the little-endian integer at `offset` (which must already exist).
    mutating func set<T: FixedWidthInteger>(_ value: T, at offset: Int) {
        for i in 0..<MemoryLayout<T>.size { bytes[offset + i] = UInt8(truncatingIfNeeded: value >> (8 * i)) }
    }

    /// The 8-bit value that makes the bytes in `range` sum to zero, with that byte counted as 0.
    func checksum(over range: Range<Int>, excluding index: Int) -> UInt8 {
        var sum: UInt8 = 0
        for i in range where i != index { sum &+= bytes[i] }
        return 0 &- sum
    }
}
