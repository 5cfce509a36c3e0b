import Memory
import Testing
import Loader

/// Loads synthesized kernels and reads back, through `GuestMemory`, what a Multiboot kernel
/// would find: its segments, zeroed BSS, the information structure, modules and memory map.
@Suite struct MultibootLoadTests {
    static let ram128M: [Range<UInt64>] = [0..<0x9F000, 0x100000..<(64 << 20)]

    func config(path: String = "/boot/kernel.elf", cmdline: String = "", modules: [MultibootModule] = [],
                ramBelow4G: UInt64 = 128 << 20, mmap: [E820Entry] = []) -> MultibootConfiguration {
        MultibootConfiguration(kernelPath: path, commandLine: cmdline, modules: modules,
                               usableRAM: Self.ram128M, ramBelow4G: ramBelow4G, memoryMap: mmap)
    }

    /// Fills `[address, address + count)` with 0xEE so zeroing is observable.
    func dirty(_ memory: GuestMemory, _ address: UInt64, _ count: Int) throws {
        try memory.write([UInt8](repeating: 0xEE, count: count), at: address)
    }

    @Test(arguments: [false, true])
    func elfSegmentsLandAtPhysicalAddressesWithBSSZeroed(is64: Bool) throws {
        let text = pattern(0x300, seed: 1)
        let data = pattern(0x80, seed: 9)
        let kernel = makeELF(is64: is64, entry: 0x100040, segments: [
            TestSegment(paddr: 0x100000, data: text, memsz: 0x300, offset: 0x1000, vaddr: 0xC010_0000),
            TestSegment(paddr: 0x102000, data: data, memsz: 0x1800, offset: 0x2000),
        ])
        let memory = try makeGuestMemory()
        try dirty(memory, 0x100000, 0x10000)
        let boot = try MultibootLoader.load(kernel: kernel, configuration: config(), into: memory)

        #expect(try memory.read(at: 0x100000, count: text.count) == text)
        #expect(try memory.read(at: 0x102000, count: data.count) == data)
        #expect(try memory.read(at: 0x102080, count: 0x1780).allSatisfy { $0 == 0 })
        #expect(boot.entryPoint == 0x100040)
        #expect(boot.eax == 0x2BAD_B002)
        #expect(boot.ebx == boot.infoAddress)
        #expect(boot.kernelRange == 0x100000..<0x103800)
        // The information follows the kernel on the next page.
        #expect(boot.infoAddress == 0x104000)
    }

    @Test func aoutKludgeLoadsFromHeaderRelativeOffsetAndZeroesBSS() throws {
        let load: UInt32 = 0x200000
        var file = pattern(0x400, seed: 3)
        // Header at file offset 0x40, so header_addr = load_addr + 0x40.
        put(multibootHeader(flags: 0x1_0003, extra: [load + 0x40, load, load + 0x400, load + 0x3000, load + 0x80]),
            at: 0x40, in: &file)
        let memory = try makeGuestMemory()
        try dirty(memory, UInt64(load), 0x4000)
        let boot = try MultibootLoader.load(kernel: file, configuration: config(path: "k.aout"), into: memory)
        #expect(try memory.read(at: UInt64(load), count: file.count) == file)
        #expect(try memory.read(at: UInt64(load) + 0x400, count: 0x2C00).allSatisfy { $0 == 0 })
        #expect(boot.entryPoint == load + 0x80)
        #expect(boot.kernelRange == UInt64(load)..<UInt64(load + 0x3000))
        #expect(boot.infoAddress == load + 0x3000)
    }

    @Test func aoutKludgeWithZeroEndFieldsLoadsRestOfFile() throws {
        var file = [UInt8](repeating: 0, count: 0x100) + pattern(0x500, seed: 5)
        // Header at 0x100 describing the image as starting at file offset 0x80.
        put(multibootHeader(flags: 0x1_0000, extra: [0x300080, 0x300000, 0, 0, 0x300000]), at: 0x100, in: &file)
        let memory = try makeGuestMemory()
        let boot = try MultibootLoader.load(kernel: file, configuration: config(path: "k"), into: memory)
        #expect(try memory.read(at: 0x300000, count: file.count - 0x80) == Array(file[0x80...]))
        #expect(boot.kernelRange == 0x300000..<(0x300000 + UInt64(file.count - 0x80)))
    }

    @Test(arguments: [(UInt64(128) << 20, UInt32(130_048)), (UInt64(0xE000_0000), UInt32(3_668_992))])
    func informationStructure(ramBelow4G: UInt64, memUpper: UInt32) throws {
        let kernel = makeELF(is64: false, entry: 0x100000, segments: [
            TestSegment(paddr: 0x100000, data: pattern(0x100, seed: 0), memsz: 0x100, offset: 0x1000),
        ])
        let mod1 = pattern(5000, seed: 11)
        let mod2 = pattern(17, seed: 22)
        let p1 = try writeTemporaryFile(named: "initrd.img", contents: mod1)
        let p2 = try writeTemporaryFile(named: "second,mod", contents: mod2)
        defer { removeTemporary(p1); removeTemporary(p2) }
        let modules = MultibootModule.parseList("\(p1) root=/dev/ram0,\(p2.replacingOccurrences(of: ",", with: ",,"))")
        #expect(modules.map(\.path) == [p1, p2])
        let mmap = [E820Entry(base: 0, length: 0x9FC00, kind: .ram),
                    E820Entry(base: 0xF0000, length: 0x10000, kind: .reserved),
                    E820Entry(base: 0x100000, length: ramBelow4G - 0x100000, kind: .ram)]
        let memory = try makeGuestMemory()
        let boot = try MultibootLoader.load(
            kernel: kernel, configuration: config(cmdline: "console=ttyS0 debug", modules: modules,
                                                  ramBelow4G: ramBelow4G, mmap: mmap),
            into: memory)
        let mbi = UInt64(boot.infoAddress)
        #expect(mbi % 4096 == 0 && mbi >= boot.kernelRange.upperBound)
        func field(_ offset: UInt64) throws -> UInt32 { try memory.load(UInt32.self, at: mbi + offset) }

        // MEMORY | BOOT_DEVICE | CMDLINE | MODS | MEM_MAP | BOOT_LOADER_NAME, as QEMU.
        #expect(try field(0) == 0x24F)
        #expect(try field(4) == 639)   // from the map: 0x9fc00 bytes usable at 0, as QEMU reports
        #expect(try field(8) == memUpper)
        #expect(try field(12) == 0x8000_FFFF)
        #expect(try readCString(memory, at: UInt64(field(16))) == "/boot/kernel.elf console=ttyS0 debug")
        #expect(try readCString(memory, at: UInt64(field(64))) == "qemu")

        #expect(try field(20) == 2)
        let mods = UInt64(try field(24))
        for (i, (contents, string)) in [(mod1, "\(p1) root=/dev/ram0"), (mod2, p2)].enumerated() {
            let d = mods + UInt64(16 * i)
            let start = UInt64(try memory.load(UInt32.self, at: d))
            let end = UInt64(try memory.load(UInt32.self, at: d + 4))
            #expect(start % 4096 == 0 && start > mbi)
            #expect(end - start == UInt64(contents.count))
            #expect(try memory.read(at: start, count: contents.count) == contents)
            #expect(try readCString(memory, at: UInt64(memory.load(UInt32.self, at: d + 8))) == string)
            #expect(boot.moduleRanges[i] == start..<end)
        }
        #expect(boot.moduleRanges[1].lowerBound >= boot.moduleRanges[0].upperBound)
        #expect(boot.endOfImage == boot.moduleRanges[1].upperBound)

        #expect(try field(44) == 24 * 3)
        let map = UInt64(try field(48))
        for (i, e) in mmap.enumerated() {
            let a = map + UInt64(24 * i)
            #expect(try memory.load(UInt32.self, at: a) == 20)
            #expect(try memory.load(UInt64.self, at: a + 4) == e.base)
            #expect(try memory.load(UInt64.self, at: a + 12) == e.length)
            #expect(try memory.load(UInt32.self, at: a + 20) == e.kind.rawValue)
        }
    }

    @Test func noModulesAndNoMemoryMap() throws {
        let kernel = makeELF(is64: true, entry: 0x100000, segments: [
            TestSegment(paddr: 0x100000, data: [0xF4], memsz: 1, offset: 0x1000),
        ])
        let memory = try makeGuestMemory()
        let boot = try MultibootLoader.load(kernel: kernel, configuration: config(), into: memory)
        let mbi = UInt64(boot.infoAddress)
        #expect(try memory.load(UInt32.self, at: mbi) == 0x20F)
        #expect(try memory.load(UInt32.self, at: mbi + 20) == 0)
        #expect(try readCString(memory, at: UInt64(memory.load(UInt32.self, at: mbi + 16))) == "/boot/kernel.elf ")
        #expect(boot.moduleRanges.isEmpty)
    }

    @Test func moduleListSyntax() {
        #expect(MultibootModule.parseList("a.bin x=1,b.bin,,c,d").map(\.commandLine) == ["a.bin x=1", "b.bin,c", "d"])
        #expect(MultibootModule.parseList("").isEmpty)
        #expect(MultibootModule.parseList("one two three")[0].path == "one")
    }

    @Test func headerDetection() throws {
        var file = [UInt8](repeating: 0, count: 8192)
        put(multibootHeader(flags: 0x1), at: 8192 - 12, in: &file)
        #expect(MultibootHeader.isPresent(in: file))
        #expect(try MultibootHeader.find(in: file, path: "k").offset == 8180)
        // Beyond the first 8 KiB it does not count, nor does an unaligned header.
        var late = [UInt8](repeating: 0, count: 8200)
        put(multibootHeader(flags: 0x1), at: 8188, in: &late)
        #expect(!MultibootHeader.isPresent(in: late))
        var unaligned = [UInt8](repeating: 0, count: 100)
        put(multibootHeader(flags: 0x1), at: 6, in: &unaligned)
        #expect(!MultibootHeader.isPresent(in: unaligned))
    }
}
