import VMMSys
import Memory

/// Where each ACPI table was written (guest-physical): what the machine tells the guest
/// (the RSDP is found by its signature; fw_cfg and tests read the others).
public struct ACPITableAddresses: Equatable, Sendable {
    /// Root System Description Pointer, in the BIOS area where the OS searches for it.
    public var rsdp: UInt64
    /// Root System Description Table (32-bit pointers to FADT and MADT).
    public var rsdt: UInt64
    /// Extended System Description Table (64-bit pointers to FADT and MADT).
    public var xsdt: UInt64
    /// Fixed ACPI Description Table ("FACP"): PM registers, SCI, reset register.
    public var fadt: UInt64
    /// Multiple APIC Description Table ("APIC"): local APICs, IOAPIC, overrides.
    public var madt: UInt64
    /// Differentiated System Description Table: the AML (`\_S5`).
    public var dsdt: UInt64
    /// Firmware ACPI Control Structure.
    public var facs: UInt64
    /// The first byte past the last table in the tables area.
    public var tablesEnd: UInt64
}

/// Builds the ACPI tables a PC guest needs to find its CPUs, interrupt routing and PM
/// hardware, and writes them into guest RAM (which must be RAM or ROM there).
///
/// Layout from `tablesAddress`: FACS (64-byte aligned), DSDT, FADT, MADT, RSDT, XSDT, each
/// 16-byte aligned; the RSDP separately at `rsdpAddress`. RSDP → RSDT/XSDT → FADT, MADT;
/// FADT → FACS, DSDT.
///
/// QEMU: `acpi_build()` (hw/i386/acpi-build.c), whose tables firmware places through the
/// fw_cfg table loader; with no firmware these are written straight into guest memory. They
/// describe the same machine in fewer bytes (this DSDT holds only `\_S5`).
public enum ACPITables {
    /// Builds and writes all tables; nothing is written if the configuration is refused.
    /// - Throws: `LoaderError` with subject "ACPI" for a bad CPU count or placement, or when
    ///   the area is not guest RAM.
    public static func write(_ c: ACPIConfiguration, into memory: GuestMemory) throws(LoaderError) -> ACPITableAddresses {
        try validate(c)
        func align(_ a: UInt64, _ n: UInt64) -> UInt64 { (a + n - 1) & ~(n - 1) }

        var placed: [(UInt64, [UInt8])] = []
        var cursor = c.tablesAddress
        func place(_ table: [UInt8], alignment: UInt64 = 16) -> UInt64 {
            let address = align(cursor, alignment)
            placed.append((address, table))
            cursor = address + UInt64(table.count)
            return address
        }
        let facs = place(FACS.build(), alignment: FACS.alignment)
        let dsdt = place(DSDT.build(configuration: c))
        let fadt = place(FADT.build(facs: facs, dsdt: dsdt, configuration: c))
        let madt = place(MADT.build(configuration: c))
        let rsdt = place(RootTables.rsdt(entries: [fadt, madt], configuration: c))
        let xsdt = place(RootTables.xsdt(entries: [fadt, madt], configuration: c))
        guard cursor <= c.tablesLimit else {
            throw LoaderError("ACPI", "tables need \(hexRange(c.tablesAddress, cursor)), more than the "
                + "area \(hexRange(c.tablesAddress, c.tablesLimit))")
        }
        placed.append((c.rsdpAddress, RSDP.build(rsdt: rsdt, xsdt: xsdt, configuration: c)))
        for (address, bytes) in placed {
            try memory.write(bytes, at: address, for: "ACPI", "table at \(hex(address))")
        }
        return ACPITableAddresses(rsdp: c.rsdpAddress, rsdt: rsdt, xsdt: xsdt, fadt: fadt, madt: madt,
                                  dsdt: dsdt, facs: facs, tablesEnd: cursor)
    }

    private static func validate(_ c: ACPIConfiguration) throws(LoaderError) {
        guard (1...255).contains(c.cpuCount) else {
            throw LoaderError("ACPI", "CPU count \(c.cpuCount) is outside 1...255 (xAPIC IDs)")
        }
        guard c.rsdpAddress % 16 == 0, c.rsdpAddress >= 0xE0000,
              c.rsdpAddress + UInt64(RSDP.size) <= 0x100000 else {
            throw LoaderError("ACPI", "RSDP address \(hex(c.rsdpAddress)) must be 16-byte aligned "
                + "inside [0xe0000, 0x100000) where the OS searches")
        }
        guard c.tablesAddress < c.tablesLimit, c.tablesLimit <= 1 << 32 else {
            throw LoaderError("ACPI", "tables area \(hexRange(c.tablesAddress, c.tablesLimit)) must be "
                + "non-empty and below 4 GiB")
        }
        let rsdpEnd = c.rsdpAddress + UInt64(RSDP.size)
        guard rsdpEnd <= c.tablesAddress || c.tablesLimit <= c.rsdpAddress else {
            throw LoaderError("ACPI", "RSDP \(hexRange(c.rsdpAddress, rsdpEnd)) overlaps the tables "
                + "area \(hexRange(c.tablesAddress, c.tablesLimit))")
        }
    }
}
