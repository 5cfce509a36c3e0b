/// The Root System Description Pointer, revision 2 (ACPI 2.0+): how the OS finds the RSDT
/// (32-bit) and XSDT (64-bit). Not an SDT: it has its own 20-byte and 36-byte checksums.
enum RSDP {
    static let size = 36
    static let offsetChecksum = 8, offsetRSDT = 16, offsetXSDT = 24, offsetExtendedChecksum = 32

    static func build(rsdt: UInt64, xsdt: UInt64, configuration c: ACPIConfiguration) -> [UInt8] {
        var w = ByteWriter()
        w.append(ascii: "RSD PTR ", width: 8)
        w.append(UInt8(0))  // checksum over the first 20 bytes (the ACPI 1.0 part)
        w.append(ascii: c.oemID, width: 6)
        w.append(UInt8(2))  // revision 2: the extended fields are valid
        w.append(UInt32(truncatingIfNeeded: rsdt))
        w.append(UInt32(size))
        w.append(xsdt)
        w.append(UInt8(0))  // extended checksum over all 36 bytes
        w.appendZeros(3)
        w.set(w.checksum(over: 0..<20, excluding: 8), at: 8)
        w.set(w.checksum(over: 0..<size, excluding: 32), at: 32)
        return w.bytes
    }
}
