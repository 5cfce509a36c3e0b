/// An ACPI system description table under construction: the 36-byte common header
/// (signature, length, revision, checksum, OEM IDs, creator) followed by a body. `finish()`
/// fills in the length and the checksum that makes all bytes sum to zero.
struct SystemDescriptionTable {
    static let headerSize = 36
    static let creatorID = "SVMM"
    static let creatorRevision: UInt32 = 1

    private(set) var w = ByteWriter()

    init(signature: String, revision: UInt8, configuration c: ACPIConfiguration) {
        w.append(ascii: signature, width: 4)
        w.append(UInt32(0))  // length, set by finish()
        w.append(revision)
        w.append(UInt8(0))  // checksum, set by finish()
        w.append(ascii: c.oemID, width: 6)
        w.append(ascii: c.oemTableID, width: 8)
        w.append(UInt32(1))  // OEM revision
        w.append(ascii: Self.creatorID, width: 4)
        w.append(Self.creatorRevision)
    }

    mutating func append<T: FixedWidthInteger>(_ value: T) { w.append(value) }
    mutating func append(bytes: some Sequence<UInt8>) { w.append(bytes: bytes) }

    /// A Generic Address Structure (12 bytes) for an I/O port register `bits` wide, accessed
    /// `accessSize` bytes at a time (1 byte, 2 word, 3 dword); port 0 encodes "absent".
    mutating func appendIOAddress(port: UInt64, bits: UInt8, accessSize: UInt8) {
        let present = port != 0
        w.append(UInt8(present ? 1 : 0))  // address space: system I/O
        w.append(present ? bits : 0)
        w.append(UInt8(0))  // bit offset
        w.append(present ? accessSize : 0)
        w.append(port)
    }

    /// The finished table with length and checksum set.
    func finish() -> [UInt8] {
        var out = w
        out.set(UInt32(out.count), at: 4)
        out.set(out.checksum(over: 0..<out.count, excluding: 9), at: 9)
        return out.bytes
    }
}
