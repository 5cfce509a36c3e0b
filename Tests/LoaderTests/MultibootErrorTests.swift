import Memory
import Testing
import Loader

/// Every refused kernel gives a message naming the file and the problem, and leaves guest
/// RAM untouched.
@Suite struct MultibootErrorTests {
    let path = "/images/kernel.elf"

    func config(path: String? = nil, modules: [MultibootModule] = [],
                usable: [Range<UInt64>] = [0..<0x9F000, 0x100000..<(64 << 20)]) -> MultibootConfiguration {
        MultibootConfiguration(kernelPath: path ?? self.path, modules: modules, usableRAM: usable,
                               ramBelow4G: 64 << 20)
    }

    /// Loads `kernel`, expects a `LoaderError` about `subject` whose message contains `words`,
    /// and checks the kernel's area was not written.
    func expectRefused(_ kernel: [UInt8], _ words: [String], subject: String? = nil,
                       configuration: MultibootConfiguration? = nil,
                       sourceLocation: SourceLocation = #_sourceLocation) throws {
        let memory = try makeGuestMemory()
        let before = try memory.read(at: 0x100000, count: 0x4000)
        let error = #expect(throws: LoaderError.self, sourceLocation: sourceLocation) {
            _ = try MultibootLoader.load(kernel: kernel, configuration: configuration ?? config(), into: memory)
        }
        #expect(error?.subject == (subject ?? path), sourceLocation: sourceLocation)
        let message = error?.description ?? ""
        #expect(message.hasPrefix("\(subject ?? path): "), sourceLocation: sourceLocation)
        for w in words {
            #expect(message.contains(w), "\(message) lacks \(w)", sourceLocation: sourceLocation)
        }
        #expect(try memory.read(at: 0x100000, count: 0x4000) == before, sourceLocation: sourceLocation)
    }

    func oneSegment(is64: Bool = false, paddr: UInt64 = 0x100000, size: Int = 0x100) -> [UInt8] {
        makeELF(is64: is64, entry: paddr, segments: [
            TestSegment(paddr: paddr, data: pattern(size, seed: 1), memsz: UInt64(size), offset: 0x1000),
        ])
    }

    @Test func noMultibootHeader() throws {
        try expectRefused(pattern(20000, seed: 0),
                          ["not a Multiboot kernel (no Multiboot header in the first 8 KiB)"])
        try expectRefused([], ["not a Multiboot kernel"])
    }

    @Test func badChecksum() throws {
        let kernel = makeELF(is64: false, entry: 0x100000,
                             segments: [TestSegment(paddr: 0x100000, data: [1], memsz: 1, offset: 0x1000)],
                             multiboot: multibootHeader(flags: 0x3, checksumDelta: 1))
        try expectRefused(kernel, ["Multiboot header at offset 0x200", "bad checksum"])
    }

    @Test func unsupportedRequiredFlags() throws {
        let kernel = makeELF(is64: false, entry: 0x100000,
                             segments: [TestSegment(paddr: 0x100000, data: [1], memsz: 1, offset: 0x1000)],
                             multiboot: multibootHeader(flags: 0x3 | 1 << 5))
        try expectRefused(kernel, ["does not support", "0x20"])
    }

    @Test func truncatedELFHeader() throws {
        var file: [UInt8] = [0x7F, 0x45, 0x4C, 0x46, 1, 1, 1, 0] + [UInt8](repeating: 0, count: 16)
        file += multibootHeader(flags: 0)
        try expectRefused(file, ["truncated ELF header", "36 bytes"])
    }

    @Test func notELFWithoutAoutKludge() throws {
        var file = [UInt8](repeating: 0x90, count: 64)
        put(multibootHeader(flags: 0), at: 16, in: &file)
        try expectRefused(file, ["not ELF", "bit 16"])
    }

    @Test func wrongMachine() throws {
        let kernel = makeELF(is64: false, entry: 0x100000,
                             segments: [TestSegment(paddr: 0x100000, data: [1], memsz: 1, offset: 0x1000)],
                             machine: 40)
        try expectRefused(kernel, ["ELF machine 40"])
    }

    @Test(arguments: [false, true])
    func programHeaderTableOutsideFile(is64: Bool) throws {
        var kernel = oneSegment(is64: is64)
        put(is64 ? le(UInt64(0x10_0000)) : le(UInt32(0x10_0000)), at: is64 ? 32 : 28, in: &kernel)
        try expectRefused(kernel, ["program header table [0x100000,", "outside the file"])
    }

    @Test(arguments: [false, true])
    func segmentFileRangeOutsideFile(is64: Bool) throws {
        var kernel = oneSegment(is64: is64)
        kernel.removeLast(0x80)  // cut into segment 0's bytes
        try expectRefused(kernel, ["segment 0 file range [0x1000, 0x1100)", "outside the file"])
    }

    @Test func fileSizeLargerThanMemorySize() throws {
        let kernel = makeELF(is64: false, entry: 0x100000, segments: [
            TestSegment(paddr: 0x100000, data: pattern(0x100, seed: 0), memsz: 0x80, offset: 0x1000),
        ])
        try expectRefused(kernel, ["segment 0", "p_filesz 0x100", "p_memsz 0x80"])
    }

    @Test func overlappingSegments() throws {
        let kernel = makeELF(is64: false, entry: 0x100000, segments: [
            TestSegment(paddr: 0x100000, data: pattern(0x100, seed: 0), memsz: 0x2000, offset: 0x1000),
            TestSegment(paddr: 0x101000, data: pattern(0x100, seed: 0), memsz: 0x100, offset: 0x2000),
        ])
        try expectRefused(kernel, ["segment 0 [0x100000, 0x102000) overlaps segment 1 [0x101000, 0x101100)"])
    }

    @Test func segmentOutsideRAM() throws {
        let kernel = makeELF(is64: false, entry: 0x100000, segments: [
            TestSegment(paddr: 0x100000, data: pattern(0x100, seed: 0), memsz: 0x100, offset: 0x1000),
            TestSegment(paddr: 0x100000 + (64 << 20) - 0x1000, data: [1], memsz: 0x80000, offset: 0x2000),
        ])
        try expectRefused(kernel, ["segment 1 [0x40ff000, 0x417f000) lies outside guest RAM"],
                          configuration: config(usable: [0x100000..<(64 << 20)]))
        // Straddling the legacy hole is refused too, though both ends are RAM.
        try expectRefused(oneSegment(paddr: 0x9E000, size: 0x2000), ["segment 0 [0x9e000, 0xa0000)", "outside guest RAM"])
    }

    @Test func segmentAbove4G() throws {
        let kernel = makeELF(is64: true, entry: 0x100000, segments: [
            TestSegment(paddr: 0x1_0000_0000, data: [1], memsz: 1, offset: 0x1000),
        ])
        try expectRefused(kernel, ["segment 0", "above 4 GiB"])
    }

    @Test func elf64EntryAbove4G() throws {
        let kernel = makeELF(is64: true, entry: 0xFFFF_FFFF_8010_0000, segments: [
            TestSegment(paddr: 0x100000, data: [1], memsz: 1, offset: 0x1000),
        ])
        try expectRefused(kernel, ["entry point 0xffffffff80100000", "above 4 GiB"])
    }

    @Test func aoutKludgeInconsistentAddresses() throws {
        var file = [UInt8](repeating: 0, count: 0x200)
        put(multibootHeader(flags: 0x1_0000, extra: [0x100000, 0x100100, 0, 0, 0x100000]), at: 0x40, in: &file)
        try expectRefused(file, ["a.out kludge", "header_addr 0x100000 is below load_addr 0x100100"])

        put(multibootHeader(flags: 0x1_0000, extra: [0x100040, 0x100000, 0x101000, 0, 0x100000]), at: 0x40, in: &file)
        try expectRefused(file, ["a.out kludge", "load range [0x0, 0x1000)", "outside the file"])

        put(multibootHeader(flags: 0x1_0000, extra: [0x100040, 0x100000, 0x100100, 0x100080, 0x100000]), at: 0x40, in: &file)
        try expectRefused(file, ["bss_end_addr 0x100080"])
    }

    @Test func truncatedAoutHeader() throws {
        var file = [UInt8](repeating: 0, count: 0x40)
        put(multibootHeader(flags: 0x1_0000), at: 0x30, in: &file)
        try expectRefused(file, ["Multiboot header at offset 0x30 is truncated"])
    }

    @Test func missingModuleFile() throws {
        let module = "/nonexistent/dir/initrd.img rw"
        try expectRefused(oneSegment(), ["cannot read module file"], subject: "/nonexistent/dir/initrd.img",
                          configuration: config(modules: [MultibootModule(commandLine: module)]))
    }

    @Test func missingKernelFile() throws {
        let memory = try makeGuestMemory()
        let error = #expect(throws: LoaderError.self) {
            _ = try MultibootLoader.load(configuration: config(path: "/nonexistent/vmlinux"), into: memory)
        }
        #expect(error?.description.hasPrefix("/nonexistent/vmlinux: cannot read kernel file") == true)
    }

    @Test func noRoomForModules() throws {
        let module = try writeTemporaryFile(named: "big.img", contents: [UInt8](repeating: 1, count: 0x3000))
        defer { removeTemporary(module) }
        try expectRefused(oneSegment(), ["no room for the module", "outside guest RAM"], subject: module,
                          configuration: config(modules: [MultibootModule(commandLine: module)],
                                                usable: [0x100000..<0x104000]))
    }
}
