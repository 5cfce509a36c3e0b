/// The Firmware ACPI Control Structure: 64 bytes, 64-byte aligned, no checksum. The OS uses
/// it for the global lock and the S3 waking vector; we provide an empty one because the FADT
/// must point to one on non-hardware-reduced platforms.
enum FACS {
    static let size = 64
    static let alignment: UInt64 = 64

    static func build() -> [UInt8] {
        var w = ByteWriter()
        w.append(ascii: "FACS", width: 4)
        w.append(UInt32(size))
        w.append(UInt32(0))  // hardware signature
        w.append(UInt32(0))  // firmware waking vector
        w.append(UInt32(0))  // global lock
        w.append(UInt32(0))  // flags
        w.append(UInt64(0))  // X firmware waking vector
        w.append(UInt8(2))  // version (ACPI 4.0+ layout)
        w.appendZeros(size - w.count)
        return w.bytes
    }
}
