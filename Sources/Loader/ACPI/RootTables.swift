/// The RSDT (32-bit entries) and XSDT (64-bit entries): lists of the tables the OS reads
/// directly (FADT, MADT). The FACS and DSDT are reached through the FADT instead.
enum RootTables {
    static func rsdt(entries: [UInt64], configuration c: ACPIConfiguration) -> [UInt8] {
        var t = SystemDescriptionTable(signature: "RSDT", revision: 1, configuration: c)
        for e in entries { t.append(UInt32(truncatingIfNeeded: e)) }
        return t.finish()
    }

    static func xsdt(entries: [UInt64], configuration c: ACPIConfiguration) -> [UInt8] {
        var t = SystemDescriptionTable(signature: "XSDT", revision: 1, configuration: c)
        for e in entries { t.append(e) }
        return t.finish()
    }
}
