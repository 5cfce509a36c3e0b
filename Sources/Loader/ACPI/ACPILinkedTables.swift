/// The ACPI tables as QEMU gives them to firmware: two fw_cfg files — "etc/acpi/tables" (FACS,
/// DSDT, FADT, MADT, RSDT, XSDT, built at offset 0 and padded to 128 KiB) and "etc/acpi/rsdp"
/// — and the "etc/table-loader" script that places them (tables in high memory 64-byte aligned,
/// the RSDP in the F segment), turns every table-to-table field into an address and fixes the
/// checksums. Running the script with the tables at some base reproduces byte for byte what
/// `ACPITables.write` puts in memory for that base. QEMU: acpi_build() (hw/i386/acpi-build.c)
/// with its bios_linker_loader_* calls, build_rsdp(), acpi_table_end().
public struct ACPILinkedTables: Sendable, Equatable {
    /// QEMU's fw_cfg file names. QEMU: ACPI_BUILD_TABLE_FILE, ACPI_BUILD_RSDP_FILE, ACPI_BUILD_LOADER_FILE.
    public static let tablesFile = "etc/acpi/tables"
    /// The RSDP's file. QEMU: ACPI_BUILD_RSDP_FILE.
    public static let rsdpFile = "etc/acpi/rsdp"
    /// The linker/loader script's file. QEMU: ACPI_BUILD_LOADER_FILE.
    public static let loaderFile = "etc/table-loader"
    /// QEMU pads the table blob to 128 KiB and the script to 4 KiB, leaving room to grow.
    /// QEMU: ACPI_BUILD_TABLE_SIZE, ACPI_BUILD_ALIGN_SIZE.
    public static let tablesBlobSize = 0x2_0000
    /// The script's size is a multiple of this (QEMU's 4 KiB alignment of its fw_cfg blobs).
    public static let loaderAlignment = 0x1000

    /// The table blob ("etc/acpi/tables"): every table but the RSDP, unpatched.
    public let tables: [UInt8]
    /// The RSDP ("etc/acpi/rsdp"), its RSDT/XSDT pointers left for the loader to patch.
    public let rsdp: [UInt8]
    /// The commands that place, link and checksum the tables. QEMU: BIOSLinker.
    public let loader: BIOSLinkerLoader

    /// Builds the files for `c` (its placement fields are ignored: firmware chooses).
    public static func build(_ c: ACPIConfiguration) throws(LoaderError) -> ACPILinkedTables {
        guard (1...255).contains(c.cpuCount) else {
            throw LoaderError("ACPI", "CPU count \(c.cpuCount) is outside 1...255 (xAPIC IDs)")
        }
        var blob: [UInt8] = []
        var loader = BIOSLinkerLoader()
        loader.allocate(tablesFile, alignment: 64, zone: .high)
        func place(_ table: [UInt8], alignment: Int = 16) -> Int {
            let at = (blob.count + alignment - 1) & ~(alignment - 1)
            blob += [UInt8](repeating: 0, count: at - blob.count) + table
            return at
        }
        func checksum(_ at: Int, _ length: Int) {
            loader.addChecksum(in: tablesFile, at: UInt32(at + 9), start: UInt32(at), length: UInt32(length))
        }
        func pointer(_ at: Int, _ size: UInt8) { loader.addPointer(in: tablesFile, at: UInt32(at), size: size, to: tablesFile) }

        let facs = place(FACS.build(), alignment: Int(FACS.alignment))
        let dsdtTable = DSDT.build(configuration: c)
        let dsdt = place(dsdtTable)
        checksum(dsdt, dsdtTable.count)
        let fadtTable = FADT.build(facs: UInt64(facs), dsdt: UInt64(dsdt), configuration: c)
        let fadt = place(fadtTable)
        pointer(fadt + FADT.offsetFirmwareControl, 4)
        pointer(fadt + FADT.offsetDSDT, 4)
        pointer(fadt + FADT.offsetXDSDT, 8)
        checksum(fadt, fadtTable.count)
        let madtTable = MADT.build(configuration: c)
        let madt = place(madtTable)
        checksum(madt, madtTable.count)
        let entries = [UInt64(fadt), UInt64(madt)]
        let rsdtTable = RootTables.rsdt(entries: entries, configuration: c)
        let rsdt = place(rsdtTable)
        for i in entries.indices { pointer(rsdt + SystemDescriptionTable.headerSize + 4 * i, 4) }
        checksum(rsdt, rsdtTable.count)
        let xsdtTable = RootTables.xsdt(entries: entries, configuration: c)
        let xsdt = place(xsdtTable)
        for i in entries.indices { pointer(xsdt + SystemDescriptionTable.headerSize + 8 * i, 8) }
        checksum(xsdt, xsdtTable.count)
        guard blob.count <= tablesBlobSize else {
            throw LoaderError("ACPI", "tables take \(blob.count) bytes, more than the \(tablesBlobSize) firmware is given")
        }
        blob += [UInt8](repeating: 0, count: tablesBlobSize - blob.count)

        let rsdp = RSDP.build(rsdt: UInt64(rsdt), xsdt: UInt64(xsdt), configuration: c)
        loader.allocate(rsdpFile, alignment: 16, zone: .fseg)
        loader.addPointer(in: rsdpFile, at: UInt32(RSDP.offsetRSDT), size: 4, to: tablesFile)
        loader.addPointer(in: rsdpFile, at: UInt32(RSDP.offsetXSDT), size: 8, to: tablesFile)
        loader.addChecksum(in: rsdpFile, at: UInt32(RSDP.offsetChecksum), start: 0, length: 20)
        loader.addChecksum(in: rsdpFile, at: UInt32(RSDP.offsetExtendedChecksum), start: 0, length: UInt32(RSDP.size))
        return ACPILinkedTables(tables: blob, rsdp: rsdp, loader: loader)
    }
}
