import Memory
import Testing
import Loader

/// Parses back the tables from guest RAM with a small parser of its own and checks structure,
/// checksums and the values a PC guest relies on.
@Suite struct ACPITablesTests {
    /// An SDT read from the guest: its bytes, after checking signature, length and checksum.
    struct Table {
        let bytes: [UInt8]
        func u8(_ o: Int) -> UInt8 { bytes[o] }
        func u16(_ o: Int) -> UInt16 { UInt16(bytes[o]) | UInt16(bytes[o + 1]) << 8 }
        func u32(_ o: Int) -> UInt32 { (0..<4).reduce(0) { $0 | UInt32(bytes[o + $1]) << (8 * $1) } }
        func u64(_ o: Int) -> UInt64 { (0..<8).reduce(0) { $0 | UInt64(bytes[o + $1]) << (8 * $1) } }
        func ascii(_ o: Int, _ n: Int) -> String { String(decoding: bytes[o..<(o + n)], as: UTF8.self) }
    }

    static func sum(_ bytes: some Sequence<UInt8>) -> UInt8 { bytes.reduce(0, &+) }

    func table(_ memory: GuestMemory, at address: UInt64, signature: String,
               sourceLocation: SourceLocation = #_sourceLocation) throws -> Table {
        let header = Table(bytes: try memory.read(at: address, count: 36))
        #expect(header.ascii(0, 4) == signature, sourceLocation: sourceLocation)
        let length = Int(header.u32(4))
        #expect(length >= 36, sourceLocation: sourceLocation)
        let bytes = try memory.read(at: address, count: length)
        #expect(Self.sum(bytes) == 0, "\(signature) checksum", sourceLocation: sourceLocation)
        #expect(address % 4 == 0, sourceLocation: sourceLocation)
        return Table(bytes: bytes)
    }

    /// Follows RSDP → RSDT/XSDT → FADT/MADT → FACS/DSDT and checks every link.
    @Test(arguments: [1, 4, 255])
    func tablesParseBackAndCrossReference(cpus: Int) throws {
        let memory = try makeGuestMemory()
        let a = try ACPITables.write(ACPIConfiguration(cpuCount: cpus), into: memory)
        #expect(a.rsdp == 0xF0000)
        #expect(a.tablesEnd <= 0xF0000 && a.facs >= 0xE0000)

        let rsdp = Table(bytes: try memory.read(at: a.rsdp, count: 36))
        #expect(rsdp.ascii(0, 8) == "RSD PTR ")
        #expect(Self.sum(rsdp.bytes[0..<20]) == 0)
        #expect(Self.sum(rsdp.bytes) == 0)
        #expect(rsdp.u8(15) == 2)
        #expect(rsdp.u32(20) == 36)
        #expect(UInt64(rsdp.u32(16)) == a.rsdt)
        #expect(rsdp.u64(24) == a.xsdt)

        let rsdt = try table(memory, at: a.rsdt, signature: "RSDT")
        let xsdt = try table(memory, at: a.xsdt, signature: "XSDT")
        let rsdtEntries = stride(from: 36, to: rsdt.bytes.count, by: 4).map { UInt64(rsdt.u32($0)) }
        let xsdtEntries = stride(from: 36, to: xsdt.bytes.count, by: 8).map { xsdt.u64($0) }
        #expect(rsdtEntries == [a.fadt, a.madt])
        #expect(xsdtEntries == rsdtEntries)

        let fadt = try table(memory, at: a.fadt, signature: "FACP")
        #expect(fadt.bytes.count == 244 && fadt.u8(8) >= 3)
        #expect(UInt64(fadt.u32(36)) == a.facs)
        #expect(UInt64(fadt.u32(40)) == a.dsdt && fadt.u64(140) == a.dsdt)

        let facs = Table(bytes: try memory.read(at: a.facs, count: 64))
        #expect(facs.ascii(0, 4) == "FACS" && facs.u32(4) == 64 && a.facs % 64 == 0)

        let dsdt = try table(memory, at: a.dsdt, signature: "DSDT")
        #expect(dsdt.bytes.count > 36)
        #expect(dsdt.bytes[36...].starts(with: [0x08, 0x5F, 0x53, 0x35, 0x5F, 0x12]))  // Name(_S5_, Package

        _ = try table(memory, at: a.madt, signature: "APIC")
    }

    @Test func fadtDescribesPCPowerManagement() throws {
        let memory = try makeGuestMemory()
        let a = try ACPITables.write(ACPIConfiguration(cpuCount: 2), into: memory)
        let fadt = try table(memory, at: a.fadt, signature: "FACP")
        #expect(fadt.u16(46) == 9)  // SCI_INT
        #expect(fadt.u32(56) == 0x600)  // PM1a_EVT_BLK
        #expect(fadt.u32(64) == 0x604)  // PM1a_CNT_BLK
        #expect(fadt.u32(76) == 0x608)  // PM_TMR_BLK
        #expect(fadt.u8(88) == 4 && fadt.u8(89) == 2 && fadt.u8(91) == 4)  // block lengths
        #expect(fadt.u32(112) & (1 << 10) != 0)  // RESET_REG_SUP
        // RESET_REG: system I/O, 8 bits, port 0xcf9; RESET_VALUE 6.
        #expect(fadt.u8(116) == 1 && fadt.u8(117) == 8 && fadt.u64(120) == 0xCF9)
        #expect(fadt.u8(128) == 6)
        // The extended PM timer block agrees.
        #expect(fadt.u8(208) == 1 && fadt.u8(209) == 32 && fadt.u64(212) == 0x608)
        #expect(fadt.u64(148 + 4) == 0x600 && fadt.u64(172 + 4) == 0x604)
    }

    @Test(arguments: [1, 3, 16])
    func madtEntries(cpus: Int) throws {
        let memory = try makeGuestMemory()
        let a = try ACPITables.write(ACPIConfiguration(cpuCount: cpus), into: memory)
        let madt = try table(memory, at: a.madt, signature: "APIC")
        #expect(madt.u32(36) == 0xFEE0_0000)
        #expect(madt.u32(40) == 1)  // PCAT_COMPAT

        var entries: [(type: UInt8, at: Int)] = []
        var o = 44
        while o < madt.bytes.count {
            let length = Int(madt.u8(o + 1))
            try #require(length >= 2 && o + length <= madt.bytes.count)
            entries.append((madt.u8(o), o))
            o += length
        }
        #expect(o == madt.bytes.count)
        // CPUs + one IOAPIC + five overrides (IRQ 0, 5, 9, 10, 11) + one NMI.
        #expect(entries.count == cpus + 1 + 5 + 1)

        let lapics = entries.filter { $0.type == 0 }.map(\.at)
        #expect(lapics.count == cpus)
        for (i, e) in lapics.enumerated() {
            #expect(madt.u8(e + 1) == 8 && madt.u8(e + 2) == UInt8(i) && madt.u8(e + 3) == UInt8(i))
            #expect(madt.u32(e + 4) == 1)
        }
        let ioapics = entries.filter { $0.type == 1 }.map(\.at)
        try #require(ioapics.count == 1)
        #expect(madt.u8(ioapics[0] + 2) == 0 && madt.u32(ioapics[0] + 4) == 0xFEC0_0000 && madt.u32(ioapics[0] + 8) == 0)

        let overrides = entries.filter { $0.type == 2 }.map { e in
            (irq: madt.u8(e.at + 3), gsi: madt.u32(e.at + 4), flags: madt.u16(e.at + 8))
        }
        #expect(overrides.map(\.irq) == [0, 5, 9, 10, 11])
        #expect(overrides.map(\.gsi) == [2, 5, 9, 10, 11])
        #expect(overrides.map(\.flags) == [0, 0xD, 0xD, 0xD, 0xD])

        let nmis = entries.filter { $0.type == 4 }.map(\.at)
        try #require(nmis.count == 1)
        #expect(madt.u8(nmis[0] + 2) == 0xFF && madt.u8(nmis[0] + 5) == 1)
    }

    @Test func callerChoosesAddresses() throws {
        let memory = try makeGuestMemory()
        var c = ACPIConfiguration(cpuCount: 2, tablesAddress: 0x80010, tablesLimit: 0x90000, rsdpAddress: 0xE0000)
        c.oemID = "TESTOEM-TOO-LONG"
        let a = try ACPITables.write(c, into: memory)
        #expect(a.rsdp == 0xE0000 && a.facs == 0x80040)
        let rsdp = try memory.read(at: 0xE0000, count: 36)
        #expect(String(decoding: rsdp[9..<15], as: UTF8.self) == "TESTOE")
        let xsdt = try table(memory, at: a.xsdt, signature: "XSDT")
        #expect(xsdt.ascii(10, 6) == "TESTOE")
    }

    @Test func refusedConfigurations() throws {
        let memory = try makeGuestMemory()
        func refused(_ c: ACPIConfiguration, _ words: [String], sourceLocation: SourceLocation = #_sourceLocation) {
            let error = #expect(throws: LoaderError.self, sourceLocation: sourceLocation) {
                _ = try ACPITables.write(c, into: memory)
            }
            #expect(error?.subject == "ACPI", sourceLocation: sourceLocation)
            for w in words {
                #expect(error?.description.contains(w) == true, "\(String(describing: error)) lacks \(w)",
                        sourceLocation: sourceLocation)
            }
        }
        refused(ACPIConfiguration(cpuCount: 0), ["CPU count 0"])
        refused(ACPIConfiguration(cpuCount: 256), ["CPU count 256"])
        refused(ACPIConfiguration(cpuCount: 1, rsdpAddress: 0xF0008), ["RSDP address 0xf0008"])
        refused(ACPIConfiguration(cpuCount: 1, rsdpAddress: 0xD0000), ["RSDP address 0xd0000"])
        refused(ACPIConfiguration(cpuCount: 1, tablesAddress: 0xE0000, tablesLimit: 0xE0100), ["tables need"])
        refused(ACPIConfiguration(cpuCount: 1, tablesAddress: 0xE0000, tablesLimit: 0x100000), ["overlaps"])
        refused(ACPIConfiguration(cpuCount: 1, tablesAddress: 0x8000000, tablesLimit: 0x8010000),
                ["cannot write", "not RAM"])
    }
}
