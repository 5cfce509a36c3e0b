/// The Differentiated System Description Table: the AML namespace. Ours holds only
///
///     Name (_S3, Package (4) { 1, 1, 0, 0 })     (with `ACPIConfiguration.s3`)
///     Name (_S5, Package (4) { 0, 0, 0, 0 })
///
/// so the OS can power off: it writes SLP_TYP 0 with SLP_EN to PM1a_CNT, which QEMU's PM
/// device (and ours) treats as soft-off; and, when firmware runs to resume it, suspend to RAM
/// with SLP_TYP 1, QEMU's S3 value. QEMU: build_dsdt() (\_S3 and \_S5 in the root scope).
enum DSDT {
    static let s3: [UInt8] = [
        0x08,                    // NameOp
        0x5F, 0x53, 0x33, 0x5F,  // "_S3_"
        0x12, 0x06, 0x04,        // PackageOp, PkgLength, NumElements
        0x01, 0x01, 0x00, 0x00,  // OneOp, OneOp, ZeroOp, ZeroOp
    ]

    static let aml: [UInt8] = [
        0x08,                    // NameOp
        0x5F, 0x53, 0x35, 0x5F,  // "_S5_"
        0x12,                    // PackageOp
        0x06,                    // PkgLength: itself + NumElements + 4 elements
        0x04,                    // NumElements
        0x00, 0x00, 0x00, 0x00,  // ZeroOp × 4: SLP_TYPa, SLP_TYPb, reserved, reserved
    ]

    static func build(configuration c: ACPIConfiguration) -> [UInt8] {
        var t = SystemDescriptionTable(signature: "DSDT", revision: 2, configuration: c)
        if c.s3 { t.append(bytes: s3) }
        t.append(bytes: aml)
        return t.finish()
    }
}
