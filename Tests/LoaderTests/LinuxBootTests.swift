import VMMSys
import Memory
import Testing
@testable import Loader

/// Synthesized bzImages loaded into 64 MiB of guest RAM: placement of the kernel, zero page,
/// command line and initrd; the zero page's fields; and every refusal.
@Suite struct LinuxBootTests {
    let path = "/images/bzImage"
    let initrdPath = "/images/initrd.img"
    static let mib: UInt64 = 1 << 20

    /// The fields of a synthesized setup header.
    struct Header {
        var setupSects: UInt8 = 4
        var version: UInt16 = 0x020F
        var loadFlags: UInt8 = 0x01  // LOADED_HIGH
        var xloadflags: UInt16 = 0x01  // XLF_KERNEL_64
        var cmdlineSize: UInt32 = 2047
        var initrdAddrMax: UInt32 = 0x7FFF_FFFF
        var kernelAlignment: UInt32 = 0x20_0000
        var relocatable: UInt8 = 1
        var prefAddress: UInt64 = 0x100_0000
        var initSize: UInt32 = 0x40_0000
        /// The short jump's displacement at 0x201: the header ends at 0x202 + this.
        var jump: UInt8 = 0x6A
    }

    /// A bzImage-like file: boot sector and setup sectors with a setup header, then `payload`.
    func makeBzImage(_ h: Header = Header(), payload: [UInt8] = pattern(0x3000, seed: 0x5A)) -> [UInt8] {
        let sects = h.setupSects == 0 ? 4 : Int(h.setupSects)
        var f = [UInt8](repeating: 0, count: (sects + 1) * 512)
        put([h.setupSects], at: 0x1F1, in: &f)
        put(le(UInt16(0x0001)), at: 0x1F2, in: &f)  // root_flags: a recognizable copied value
        put(le(UInt32((payload.count + 15) / 16)), at: 0x1F4, in: &f)  // syssize
        put(le(UInt16(0xFFFD)), at: 0x1FA, in: &f)  // vid_mode "ask"; the loader says "normal"
        put(le(UInt16(0x0803)), at: 0x1FC, in: &f)  // root_dev
        put(le(UInt16(0xAA55)), at: 0x1FE, in: &f)
        put([0xEB, h.jump], at: 0x200, in: &f)
        put(Array("HdrS".utf8), at: 0x202, in: &f)
        put(le(h.version), at: 0x206, in: &f)
        put(le(UInt16(0x3210)), at: 0x20E, in: &f)  // kernel_version
        put([h.loadFlags], at: 0x211, in: &f)
        put(le(UInt32(0x10_0000)), at: 0x214, in: &f)  // code32_start
        put(le(h.initrdAddrMax), at: 0x22C, in: &f)
        put(le(h.kernelAlignment), at: 0x230, in: &f)
        put([h.relocatable, 21], at: 0x234, in: &f)  // relocatable_kernel, min_alignment
        put(le(h.xloadflags), at: 0x236, in: &f)
        put(le(h.cmdlineSize), at: 0x238, in: &f)
        put(le(h.prefAddress), at: 0x258, in: &f)
        put(le(h.initSize), at: 0x260, in: &f)
        put(le(UInt32(0xC0DE)), at: 0x264, in: &f)  // handover_offset
        return f + payload
    }

    func memory() throws -> GuestMemory {
        let system = MemorySystem()
        let root = MemoryRegion.container(name: "root", size: UInt128(1) << 64)
        root.addSubregion(try MemoryRegion.ram(name: "ram", size: 64 << 20), at: 0)
        return AddressSpace(root: root, name: "memory", system: system).guestMemory
    }

    var pcMemoryMap: [E820Entry] {
        [E820Entry(base: 0, length: 0x9FC00, kind: .ram),
         E820Entry(base: 0x9FC00, length: 0x400, kind: .reserved),
         E820Entry(base: 0xE0000, length: 0x20000, kind: .reserved),
         E820Entry(base: 0x100000, length: (64 << 20) - 0x100000, kind: .ram)]
    }

    func config(commandLine: String = "", initrd: [UInt8]? = nil, memoryMap: [E820Entry] = [],
                ramBelow4G: UInt64 = 64 << 20) -> LinuxBootConfiguration {
        LinuxBootConfiguration(kernelPath: path, commandLine: commandLine, initrd: initrd,
                               initrdPath: initrd == nil ? nil : initrdPath, memoryMap: memoryMap,
                               ramBelow4G: ramBelow4G)
    }

    func u16(_ b: [UInt8], _ o: Int) -> UInt16 { UInt16(b[o]) | UInt16(b[o + 1]) << 8 }
    func u32(_ b: [UInt8], _ o: Int) -> UInt32 { (0..<4).reduce(0) { $0 | UInt32(b[o + $1]) << (8 * $1) } }
    func u64(_ b: [UInt8], _ o: Int) -> UInt64 { (0..<8).reduce(0) { $0 | UInt64(b[o + $1]) << (8 * $1) } }

    // MARK: Loading

    @Test func loadsKernelZeroPageCommandLineAndInitrd() throws {
        let mem = try memory()
        let payload = pattern(0x3000, seed: 0x5A)
        let file = makeBzImage(payload: payload)
        let initrd = pattern(10_000, seed: 3)
        let cmdline = "console=ttyS0 root=/dev/vda rw"
        let info = try LinuxLoader.load(kernel: file, configuration: config(commandLine: cmdline, initrd: initrd,
                                                                           memoryMap: pcMemoryMap), into: mem)

        // Kernel: the bytes after (4 + 1) * 512, at 1 MiB.
        #expect(info.kernelLoadAddress == 0x100000)
        #expect(try mem.read(at: 0x100000, count: payload.count) == payload)
        #expect(info.entryPoint64 == 0x100200)
        #expect(info.entryPoint32 == 0x100000)
        #expect(info.protocolVersion == 0x020F)
        // Loaded bytes plus init_size from pref_address (16 MiB).
        #expect(info.kernelRange == 0x100000..<0x140_0000)

        // Initrd: page aligned, as high as possible in 64 MiB.
        let start = ((64 << 20) - 10_000) & ~UInt64(0xFFF)
        #expect(info.initrdRange == start..<(start + 10_000))
        #expect(try mem.read(at: start, count: initrd.count) == initrd)

        // Command line.
        #expect(info.commandLineAddress == 0x20000)
        #expect(try readCString(mem, at: 0x20000) == cmdline)

        // Zero page.
        #expect(info.bootParamsAddress == 0x7000)
        let bp = try mem.read(at: 0x7000, count: 4096)
        let headerEnd = 0x202 + 0x6A
        let changed: Set<Int> = Set(0x1FA..<0x1FC).union([0x210, 0x211]).union(0x214..<0x220)
            .union(0x224..<0x22C)
        for i in 0x1F1..<headerEnd where !changed.contains(i) {
            #expect(bp[i] == file[i], "setup header byte \(hex(i))")
        }
        #expect(String(decoding: bp[0x202..<0x206], as: UTF8.self) == "HdrS")
        #expect(u16(bp, 0x206) == 0x020F && u16(bp, 0x1F2) == 1 && u16(bp, 0x20E) == 0x3210)
        #expect(u64(bp, 0x258) == 0x100_0000 && u32(bp, 0x260) == 0x40_0000 && u32(bp, 0x264) == 0xC0DE)
        #expect(u16(bp, 0x1FA) == 0xFFFF)  // vid_mode "normal"
        #expect(bp[0x210] == 0xFF)  // type_of_loader
        #expect(bp[0x211] == 0x81)  // LOADED_HIGH | CAN_USE_HEAP
        #expect(u32(bp, 0x214) == 0x100000)  // code32_start
        #expect(u32(bp, 0x218) == UInt32(start) && u32(bp, 0x21C) == 10_000)
        #expect(u16(bp, 0x224) == 0xFE00)  // heap_end_ptr
        #expect(bp[0x226] == 0 && bp[0x227] == 0)  // ext_loader_ver/type
        #expect(u32(bp, 0x228) == 0x20000)  // cmd_line_ptr
        #expect(bp[headerEnd..<0x290].allSatisfy { $0 == 0 })  // nothing past the header
        #expect(u32(bp, 0xC0) == 0 && u32(bp, 0xC4) == 0 && u32(bp, 0xC8) == 0)  // ext_* high halves

        // E820 table.
        #expect(bp[0x1E8] == 4)
        for (i, e) in pcMemoryMap.enumerated() {
            let o = 0x2D0 + 20 * i
            #expect(u64(bp, o) == e.base && u64(bp, o + 8) == e.length && u32(bp, o + 16) == e.kind.rawValue)
        }
        #expect(bp[(0x2D0 + 20 * 4)...].allSatisfy { $0 == 0 })
        #expect(bp[0..<0x1E8].allSatisfy { $0 == 0 })
    }

    @Test func cpuStatesForBothEntryProtocols() throws {
        let info = try LinuxLoader.load(kernel: makeBzImage(), configuration: config(initrd: [1, 2, 3]),
                                        into: try memory())
        let s64 = try #require(info.cpuState64)
        #expect(s64.mode == .longMode && s64.instructionPointer == 0x100200 && s64.rsi == 0x7000)
        #expect(s64.rflags & 0x200 == 0)  // interrupts off
        #expect(s64.identityMapEnd == 64 << 20)  // covers the initrd at the top of RAM
        let s32 = info.cpuState32
        #expect(s32.mode == .protectedMode && s32.instructionPointer == 0x100000 && s32.rsi == 0x7000)
        #expect(s32.rbp == 0 && s32.rdi == 0 && s32.rbx == 0 && s32.rflags == 2)
        #expect(LinuxBootCPUState.codeSelector == 0x10 && LinuxBootCPUState.dataSelector == 0x18)
    }

    @Test func withoutInitrdOr64BitEntry() throws {
        let mem = try memory()
        var h = Header()
        h.xloadflags = 0
        let info = try LinuxLoader.load(kernel: makeBzImage(h), configuration: config(), into: mem)
        #expect(info.entryPoint64 == nil && info.cpuState64 == nil)
        #expect(info.initrdRange == nil)
        #expect(try readCString(mem, at: 0x20000) == "")
        let bp = try mem.read(at: 0x7000, count: 4096)
        #expect(u32(bp, 0x218) == 0 && u32(bp, 0x21C) == 0 && bp[0x1E8] == 0)
    }

    @Test func oldProtocolHasNoXloadflagsOrInitSize() throws {
        var h = Header()
        h.version = 0x0206  // xloadflags (2.12) and pref_address/init_size (2.10) not defined
        let payload = pattern(0x2000, seed: 9)
        let info = try LinuxLoader.load(kernel: makeBzImage(h, payload: payload), configuration: config(),
                                        into: try memory())
        #expect(info.entryPoint64 == nil)
        #expect(info.kernelRange == 0x100000..<(0x100000 + 0x2000))
    }

    @Test func setupSectsZeroMeansFour() throws {
        let mem = try memory()
        var h = Header()
        h.setupSects = 0
        let payload = pattern(0x1000, seed: 77)
        let file = makeBzImage(h, payload: payload)
        #expect(file.count == 5 * 512 + payload.count)
        _ = try LinuxLoader.load(kernel: file, configuration: config(), into: mem)
        #expect(try mem.read(at: 0x100000, count: payload.count) == payload)
    }

    @Test func otherSetupSizes() throws {
        for sects: UInt8 in [1, 15, 30] {
            let mem = try memory()
            var h = Header()
            h.setupSects = sects
            let payload = pattern(0x800, seed: sects)
            _ = try LinuxLoader.load(kernel: makeBzImage(h, payload: payload), configuration: config(), into: mem)
            #expect(try mem.read(at: 0x100000, count: payload.count) == payload)
        }
    }

    @Test func initrdRespectsInitrdAddrMaxAndMemoryMap() throws {
        var h = Header()
        h.initrdAddrMax = 0x37F_FFFF  // last usable byte: 56 MiB - 1
        let initrd = pattern(0x1800, seed: 4)
        var info = try LinuxLoader.load(kernel: makeBzImage(h), configuration: config(initrd: initrd),
                                        into: try memory())
        let low: UInt64 = 0x380_0000 - 0x2000
        #expect(info.initrdRange == low..<(low + 0x1800))

        // RAM in the map stops at 60 MiB (the rest reserved): the initrd stays below.
        let map = [E820Entry(base: 0, length: 0x9FC00, kind: .ram),
                   E820Entry(base: 0x100000, length: (60 << 20) - 0x100000, kind: .ram),
                   E820Entry(base: 60 << 20, length: 4 << 20, kind: .reserved)]
        let mem = try memory()
        info = try LinuxLoader.load(kernel: makeBzImage(), configuration: config(initrd: initrd, memoryMap: map),
                                    into: mem)
        let start: UInt64 = (60 << 20) - 0x2000
        #expect(info.initrdRange == start..<(start + 0x1800))
        #expect(try mem.read(at: start, count: initrd.count) == initrd)
    }

    @Test func commandLineUpToCmdlineSize() throws {
        var h = Header()
        h.cmdlineSize = 16
        let mem = try memory()
        _ = try LinuxLoader.load(kernel: makeBzImage(h), configuration: config(commandLine: "0123456789abcdef"),
                                 into: mem)
        #expect(try readCString(mem, at: 0x20000) == "0123456789abcdef")
    }

    @Test func detection() {
        #expect(LinuxLoader.isLinuxKernel(makeBzImage()))
        let elf = makeELF(is64: false, entry: 0x100000,
                          segments: [TestSegment(paddr: 0x100000, data: [1, 2, 3], memsz: 3, offset: 0x1000)])
        #expect(!LinuxLoader.isLinuxKernel(elf))
        #expect(!LinuxLoader.isLinuxKernel(pattern(20_000, seed: 1)))
        #expect(!LinuxLoader.isLinuxKernel([]))
        #expect(!LinuxLoader.isLinuxKernel(Array(makeBzImage().prefix(0x205))))
        var noBootFlag = makeBzImage()
        noBootFlag[0x1FE] = 0
        #expect(!LinuxLoader.isLinuxKernel(noBootFlag))
    }

    // MARK: Refusals

    /// Loads `kernel`, expects a `LoaderError` about `subject` whose message contains `words`,
    /// and checks guest RAM was not written.
    func expectRefused(_ kernel: [UInt8], _ words: [String], subject: String? = nil,
                       configuration: LinuxBootConfiguration? = nil,
                       sourceLocation: SourceLocation = #_sourceLocation) throws {
        let mem = try memory()
        let areas: [(UInt64, Int)] = [(0x7000, 0x1000), (0x20000, 0x1000), (0x100000, 0x4000),
                                      ((64 << 20) - 0x400000, 0x400000)]
        let before = try areas.map { try mem.read(at: $0.0, count: $0.1) }
        let error = #expect(throws: LoaderError.self, sourceLocation: sourceLocation) {
            _ = try LinuxLoader.load(kernel: kernel, configuration: configuration ?? config(), into: mem)
        }
        let subject = subject ?? path
        #expect(error?.subject == subject, sourceLocation: sourceLocation)
        let message = error?.description ?? ""
        #expect(message.hasPrefix("\(subject): "), sourceLocation: sourceLocation)
        for w in words {
            #expect(message.contains(w), "\(message) lacks \(w)", sourceLocation: sourceLocation)
        }
        #expect(try areas.map { try mem.read(at: $0.0, count: $0.1) } == before, sourceLocation: sourceLocation)
    }

    @Test func tooOldProtocol() throws {
        var h = Header()
        h.version = 0x0205
        let mem = try memory()
        let error = #expect(throws: LoaderError.self) {
            _ = try LinuxLoader.load(kernel: makeBzImage(h), configuration: config(), into: mem)
        }
        #expect(error?.description == "\(path): Linux boot protocol 2.05 is too old (need 2.06)")
        h.version = 0x0200
        try expectRefused(makeBzImage(h), ["2.00 is too old"])
    }

    @Test func notLinux() throws {
        let elf = makeELF(is64: true, entry: 0x100000,
                          segments: [TestSegment(paddr: 0x100000, data: [1], memsz: 1, offset: 0x1000)])
        try expectRefused(elf, ["not a Linux kernel"])
        try expectRefused([], ["not a Linux kernel"])
        try expectRefused(pattern(4096, seed: 2), ["not a Linux kernel"])
    }

    @Test func zImageRefused() throws {
        var h = Header()
        h.loadFlags = 0
        try expectRefused(makeBzImage(h), ["not a bzImage", "LOADED_HIGH"])
    }

    @Test func truncatedFiles() throws {
        let file = makeBzImage()
        // Cut inside the setup header.
        try expectRefused(Array(file.prefix(0x240)), ["truncated", "0x26c"])
        // Cut inside the setup sectors (4 + 1 sectors = 0xa00 bytes).
        try expectRefused(Array(file.prefix(0x600)), ["truncated", "setup_sects 4", "0xa00"])
        // Setup only, no protected-mode kernel.
        try expectRefused(Array(file.prefix(0xA00)), ["truncated"])
        // setup_sects pointing past the end.
        var h = Header()
        h.setupSects = 200
        var big = makeBzImage(h)
        big = Array(big.prefix(0x2000))
        try expectRefused(big, ["truncated", "setup_sects 200"])
    }

    @Test func badHeaderLength() throws {
        var h = Header()
        h.jump = 0x20  // header would end at 0x222, before cmdline_size
        try expectRefused(makeBzImage(h), ["setup header ends at 0x222"])
        h.jump = 0xA0  // past boot_params' header area
        try expectRefused(makeBzImage(h), ["past the header area"])
    }

    @Test func commandLineTooLong() throws {
        var h = Header()
        h.cmdlineSize = 16
        try expectRefused(makeBzImage(h), ["command line is 17 bytes", "at most 16"],
                          configuration: config(commandLine: "0123456789abcdefg"))
        try expectRefused(makeBzImage(), ["command line is 4000 bytes", "at most 2047"],
                          configuration: config(commandLine: String(repeating: "x", count: 4000)))
        try expectRefused(makeBzImage(), ["NUL"], configuration: config(commandLine: "a\u{0}b"))
    }

    @Test func initrdTooBig() throws {
        var h = Header()
        h.initrdAddrMax = 0x3F_FFFF  // 4 MiB
        try expectRefused(makeBzImage(h), ["initrd too big", "5242880 bytes", "0x400000"],
                          subject: initrdPath,
                          configuration: config(initrd: [UInt8](repeating: 7, count: 5 << 20)))
        // Fits below 64 MiB, but not above the kernel (which claims up to 20 MiB).
        try expectRefused(makeBzImage(), ["initrd too big", "overlapping the kernel", "0x1400000"],
                          subject: initrdPath,
                          configuration: config(initrd: [UInt8](repeating: 7, count: 50 << 20)))
        // Bigger than RAM.
        try expectRefused(makeBzImage(), ["initrd too big"], subject: initrdPath,
                          configuration: config(initrd: [UInt8](repeating: 7, count: 65 << 20)))
    }

    @Test func kernelTooLargeForRAM() throws {
        // pref_address 16 MiB + init_size 4 MiB needs 20 MiB of RAM.
        try expectRefused(makeBzImage(), ["kernel too large", "0x1400000"],
                          configuration: config(ramBelow4G: 16 << 20))
        // A protocol 2.06 kernel whose bytes alone do not fit.
        var h = Header()
        h.version = 0x0206
        try expectRefused(makeBzImage(h, payload: pattern(0x100000, seed: 1)), ["kernel too large"],
                          configuration: config(ramBelow4G: 0x180000))
        // Absurd pref_address.
        h = Header()
        h.prefAddress = 0xFFFF_FFFF_FFFF_0000
        try expectRefused(makeBzImage(h), ["above 4 GiB"])
        // kernel_alignment not a power of two.
        h = Header()
        h.kernelAlignment = 0x30_0000
        try expectRefused(makeBzImage(h), ["kernel_alignment 0x300000"])
    }

    @Test func tooManyE820Entries() throws {
        let map = (0..<129).map { E820Entry(base: UInt64($0) << 20, length: 1 << 20, kind: .ram) }
        try expectRefused(makeBzImage(), ["129 entries", "at most 128"], configuration: config(memoryMap: map))
    }

    @Test func fullE820TableFits() throws {
        let mem = try memory()
        let map = (0..<128).map { E820Entry(base: UInt64($0) << 19, length: 1 << 19, kind: .ram) }
        _ = try LinuxLoader.load(kernel: makeBzImage(), configuration: config(memoryMap: map), into: mem)
        let bp = try mem.read(at: 0x7000, count: 4096)
        #expect(bp[0x1E8] == 128)
        let last = 0x2D0 + 20 * 127
        #expect(u64(bp, last) == 127 << 19 && u64(bp, last + 8) == 1 << 19 && u32(bp, last + 16) == 1)
    }

    /// Corrupting any header byte or cutting the file anywhere gives a result or a
    /// `LoaderError`, never a trap.
    @Test func neverTrapsOnDamagedImages() throws {
        let mem = try memory()
        let file = makeBzImage(payload: pattern(0x400, seed: 1))
        for offset in 0x1F0..<0x270 {
            for value: UInt8 in [0x00, 0x01, 0x7F, 0x80, 0xFF] {
                var damaged = file
                damaged[offset] = value
                do {
                    _ = try LinuxLoader.load(kernel: damaged, configuration: config(initrd: [1]), into: mem)
                } catch {
                    #expect(error.subject == path || error.subject == initrdPath)
                }
            }
        }
        // Any cut inside the 5 setup sectors (a cut in the payload just loads less).
        for length in stride(from: 0, through: 0xA00, by: 7) {
            #expect(throws: LoaderError.self) {
                _ = try LinuxLoader.load(kernel: Array(file.prefix(length)), configuration: config(), into: mem)
            }
        }
    }

    @Test func placementsOutsideMapRAM() throws {
        // The map leaves out low memory: no room for the zero page.
        let map = [E820Entry(base: 0x100000, length: 63 << 20, kind: .ram)]
        try expectRefused(makeBzImage(), ["no room for the zero page"], configuration: config(memoryMap: map))
    }

    @Test func loadFromFiles() throws {
        let kernelFile = try writeTemporaryFile(named: "bzImage", contents: makeBzImage())
        defer { removeTemporary(kernelFile) }
        let initrdFile = try writeTemporaryFile(named: "initrd", contents: [9, 8, 7])
        defer { removeTemporary(initrdFile) }
        let mem = try memory()
        let info = try LinuxLoader.load(
            configuration: LinuxBootConfiguration(kernelPath: kernelFile, initrdPath: initrdFile,
                                                  ramBelow4G: 64 << 20),
            into: mem)
        let range = try #require(info.initrdRange)
        #expect(try mem.read(at: range.lowerBound, count: 3) == [9, 8, 7])
        let missing = #expect(throws: LoaderError.self) {
            _ = try LinuxLoader.load(configuration: LinuxBootConfiguration(kernelPath: kernelFile,
                                                                           initrdPath: "/nonexistent/initrd",
                                                                           ramBelow4G: 64 << 20),
                                     into: mem)
        }
        #expect(missing?.subject == "/nonexistent/initrd")
    }
}
