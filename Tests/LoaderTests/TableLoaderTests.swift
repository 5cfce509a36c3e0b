import Memory
import Testing
import Loader

/// "etc/table-loader" run the way SeaBIOS runs it (romfile_loader_execute(): allocate each
/// file, add the pointee's address to each pointer, subtract each range's sum from its
/// checksum byte), by an interpreter written here from the command layout: the tables it
/// leaves in memory are byte for byte the ones `ACPITables.write` builds at the same addresses.
/// QEMU: bios-linker-loader.c (BiosLinkerLoaderEntry), acpi_build().
@Suite struct TableLoaderTests {
    struct Command {
        let bytes: ArraySlice<UInt8>
        var kind: UInt32 { u32(0) }
        func u32(_ o: Int) -> UInt32 { (0..<4).reduce(0) { $0 | UInt32(bytes[bytes.startIndex + o + $1]) << (8 * $1) } }
        func name(_ o: Int) -> String {
            let field = bytes[(bytes.startIndex + o)..<(bytes.startIndex + o + 56)]
            return String(decoding: field.prefix { $0 != 0 }, as: UTF8.self)
        }
    }

    static func commands(_ script: [UInt8]) -> [Command] {
        stride(from: 0, to: script.count, by: 128).map { Command(bytes: script[$0..<($0 + 128)]) }
    }

    /// Runs `script` over `files`, placing each allocated file at `bases[name]`; returns the
    /// patched files.
    static func run(_ script: [UInt8], files: [String: [UInt8]], bases: [String: UInt64]) throws -> [String: [UInt8]] {
        var out: [String: [UInt8]] = [:]
        for c in commands(script) {
            switch c.kind {
            case 1:
                let name = c.name(4)
                let base = try #require(bases[name])
                #expect(base % UInt64(c.u32(60)) == 0, "\(name) aligned")
                guard let data = files[name] else {
                    Issue.record("ALLOCATE names \(name), which is no file")
                    continue
                }
                out[name] = data
            case 2:
                let dest = c.name(4), src = c.name(60), offset = Int(c.u32(116)), size = Int(c.bytes[c.bytes.startIndex + 120])
                var file = try #require(out[dest])
                #expect([1, 2, 4, 8].contains(size) && offset + size <= file.count)
                var value: UInt64 = 0
                for i in 0..<size { value |= UInt64(file[offset + i]) << (8 * UInt64(i)) }
                value &+= try #require(bases[src])
                for i in 0..<size { file[offset + i] = UInt8(truncatingIfNeeded: value >> (8 * UInt64(i))) }
                out[dest] = file
            case 3:
                let name = c.name(4), offset = Int(c.u32(60)), start = Int(c.u32(64)), length = Int(c.u32(68))
                var file = try #require(out[name])
                #expect(offset < file.count && start + length <= file.count)
                file[offset] &-= file[start..<(start + length)].reduce(0, &+)
                out[name] = file
            case 0:
                break   // padding: firmware skips unknown commands
            default:
                Issue.record("unexpected command \(c.kind)")
            }
        }
        return out
    }

    @Test(arguments: [1, 2, 8])
    func scriptReproducesTheTables(cpus: Int) throws {
        var c = ACPIConfiguration(cpuCount: cpus, tablesAddress: 0x07fe_0000, tablesLimit: 0x0800_0000, rsdpAddress: 0xf_5a80)
        c.s3 = true
        let linked = try ACPILinkedTables.build(c)
        #expect(linked.tables.count == 0x2_0000 && linked.rsdp.count == 36)
        let script = linked.loader.padded(to: 4096)
        #expect(script.count == 4096 && script.count % 128 == 0)
        let cmds = Self.commands(linked.loader.bytes)
        #expect(cmds.first?.kind == 1 && cmds.first?.name(4) == "etc/acpi/tables" && cmds.first?.u32(60) == 64
                && cmds.first?.bytes.dropFirst(64).first == 1, "tables first, 64-aligned, high memory")
        let rsdpAlloc = try #require(cmds.first { $0.kind == 1 && $0.name(4) == "etc/acpi/rsdp" })
        #expect(rsdpAlloc.u32(60) == 16 && rsdpAlloc.bytes[rsdpAlloc.bytes.startIndex + 64] == 2, "RSDP in the F segment")

        let patched = try Self.run(script, files: ["etc/acpi/tables": linked.tables, "etc/acpi/rsdp": linked.rsdp],
                                   bases: ["etc/acpi/tables": c.tablesAddress, "etc/acpi/rsdp": c.rsdpAddress])
        let memory = try makeGuestMemory(size: 0x0800_0000)
        let written = try ACPITables.write(c, into: memory)
        let direct = try memory.read(at: c.tablesAddress, count: Int(written.tablesEnd - c.tablesAddress))
        let tables = try #require(patched["etc/acpi/tables"])
        #expect(Array(tables.prefix(direct.count)) == direct)
        #expect(tables.dropFirst(direct.count).allSatisfy { $0 == 0 }, "padding")
        #expect(patched["etc/acpi/rsdp"] == (try memory.read(at: c.rsdpAddress, count: 36)))
    }

    @Test func s3OnlyWhenAsked() throws {
        let without = try ACPILinkedTables.build(ACPIConfiguration(cpuCount: 1))
        var c = ACPIConfiguration(cpuCount: 1)
        c.s3 = true
        let with = try ACPILinkedTables.build(c)
        func dsdt(_ t: [UInt8]) -> [UInt8] {
            let at = t.indices.first { t[$0..<min($0 + 4, t.count)].elementsEqual("DSDT".utf8) }!
            let length = Int(t[at + 4]) | Int(t[at + 5]) << 8
            return Array(t[at..<(at + length)])
        }
        #expect(dsdt(without.tables).count == 48 && dsdt(with.tables).count == 60)
        #expect(dsdt(with.tables).dropFirst(36).starts(with: [0x08, 0x5f, 0x53, 0x33, 0x5f, 0x12, 0x06, 0x04, 0x01, 0x01, 0x00, 0x00]))
    }

    @Test func refusesBadCPUCounts() {
        #expect(throws: LoaderError.self) { try ACPILinkedTables.build(ACPIConfiguration(cpuCount: 0)) }
        #expect(throws: LoaderError.self) { try ACPILinkedTables.build(ACPIConfiguration(cpuCount: 256)) }
    }
}
