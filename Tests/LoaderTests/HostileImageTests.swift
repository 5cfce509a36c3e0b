import Memory
import Testing
@testable import Loader

/// Kernel images written to break the loader: header fields near 2^32 and 2^64 whose sums
/// wrap (p_offset + p_filesz, p_paddr + p_memsz, e_phoff + e_phnum * e_phentsize, a.out
/// addresses, bzImage pref_address/init_size/cmdline_size/setup_sects). Each gives one
/// `LoaderError` naming the file — never a trap — and a seeded fuzz over every header field
/// checks the same for combinations. QEMU: `load_elf()` / `load_multiboot()` /
/// `x86_load_linux()` refuse such images with one error message too.
@Suite struct HostileImageTests {
    let path = "/images/hostile.elf"

    func config(usable: [Range<UInt64>] = [0..<0x9F000, 0x100000..<(64 << 20)]) -> MultibootConfiguration {
        MultibootConfiguration(kernelPath: path, usableRAM: usable, ramBelow4G: 64 << 20)
    }

    func refusal(_ kernel: [UInt8], sourceLocation: SourceLocation = #_sourceLocation) throws -> String {
        let memory = try makeGuestMemory()
        let error = #expect(throws: LoaderError.self, sourceLocation: sourceLocation) {
            _ = try MultibootLoader.load(kernel: kernel, configuration: config(), into: memory)
        }
        #expect(error?.subject == path, sourceLocation: sourceLocation)
        return error?.problem ?? ""
    }

    func elf(is64: Bool) -> [UInt8] {
        makeELF(is64: is64, entry: 0x100000, segments: [
            TestSegment(paddr: 0x100000, data: pattern(0x100, seed: 3), memsz: 0x200, offset: 0x1000),
        ])
    }

    /// Program header field offsets (ELF64 / ELF32) of segment 0, after the file header.
    enum PH64 { static let offset = 64 + 8, paddr = 64 + 24, filesz = 64 + 32, memsz = 64 + 40 }
    enum PH32 { static let offset = 52 + 4, paddr = 52 + 12, filesz = 52 + 16, memsz = 52 + 20 }

    @Test func elf64FileRangeWrapsPast2To64() throws {
        var k = elf(is64: true)
        put(le(UInt64.max - 15), at: PH64.offset, in: &k)
        put(le(UInt64(32)), at: PH64.filesz, in: &k)
        put(le(UInt64(32)), at: PH64.memsz, in: &k)
        let p = try refusal(k)
        #expect(p.contains("segment 0 file range [0xfffffffffffffff0, past 2^64) lies outside the file"), "\(p)")
    }

    @Test func elf64MemoryRangeWrapsPast2To64() throws {
        var k = elf(is64: true)
        put(le(UInt64.max - 0xf), at: PH64.paddr, in: &k)
        put(le(UInt64(0x100)), at: PH64.memsz, in: &k)
        #expect(try refusal(k).contains("wraps past the end of the address space"))
    }

    @Test func elf64ProgramHeaderTableWraps() throws {
        var k = elf(is64: true)
        put(le(UInt64.max - 7), at: 32, in: &k)                      // e_phoff
        #expect(try refusal(k).contains("program header table [0xfffffffffffffff8, past 2^64) lies outside the file"))
        k = elf(is64: true)
        put(le(UInt16.max), at: 54, in: &k)                          // e_phentsize
        put(le(UInt16.max), at: 56, in: &k)                          // e_phnum: 4 GiB of table
        #expect(try refusal(k).contains("program header table [0x40, 0xfffe0041) lies outside the file"))
    }

    @Test func elf32FieldsNear2To32() throws {
        var k = elf(is64: false)
        put(le(UInt32(0xffff_f000)), at: PH32.paddr, in: &k)
        put(le(UInt32(0x2000)), at: PH32.memsz, in: &k)              // ends at 0x1_0000_1000: no wrap in 64 bits
        #expect(try refusal(k).contains("[0xfffff000, 0x100001000) lies above 4 GiB"))
        k = elf(is64: false)
        put(le(UInt32.max), at: PH32.offset, in: &k)
        #expect(try refusal(k).contains("file range [0xffffffff, 0x1000000ff) lies outside the file"))
        k = elf(is64: false)
        put(le(UInt32.max), at: PH32.filesz, in: &k)
        put(le(UInt32.max), at: PH32.memsz, in: &k)
        #expect(try refusal(k).contains("outside the file"))
    }

    @Test func aoutAddressesNear2To32() throws {
        func aout(_ h: UInt32, _ l: UInt32, _ le_: UInt32, _ b: UInt32, _ e: UInt32) -> [UInt8] {
            var f = [UInt8](repeating: 0, count: 0x2000)
            put(multibootHeader(flags: 0x1_0000, extra: [h, l, le_, b, e]), at: 0x40, in: &f)
            return f
        }
        // load_addr just below 4 GiB, the whole file: the segment ends above 4 GiB.
        #expect(try refusal(aout(0xffff_f040, 0xffff_f000, 0, 0, 0)).contains("above 4 GiB"))
        // load_end_addr at the top: more bytes than the file has.
        #expect(try refusal(aout(0x100040, 0x100000, 0xffff_ffff, 0, 0)).contains("outside the file"))
        // bss_end_addr at the top with a small image: ~4 GiB of BSS, refused by placement.
        #expect(try refusal(aout(0x100040, 0x100000, 0x100100, 0xffff_ffff, 0)).contains("[0x100000, 0xffffffff) lies outside guest RAM"))
        // header_addr far beyond load_addr: more than the header's file offset.
        #expect(try refusal(aout(0xffff_ffff, 0, 0, 0, 0)).contains("exceeds the header's file offset"))
    }

    /// Seeded fuzz: 1–4 header fields of an ELF32, ELF64 or a.out kernel set to boundary
    /// values. Every run loads or throws a `LoaderError`; a trap would end the test process.
    @Test(arguments: [0, 1, 2])
    func fuzzedHeadersNeverTrap(kind: Int) throws {
        var rng = SplitMix(seed: 0xfeed_0000 + UInt64(kind))
        let memory = try makeGuestMemory()
        let base: [UInt8]
        let fields: [(offset: Int, width: Int)]
        switch kind {
        case 0:
            base = elf(is64: false)
            fields = [(24, 4), (28, 4), (42, 2), (44, 2)] + [4, 8, 12, 16, 20].map { (52 + $0, 4) }
        case 1:
            base = elf(is64: true)
            fields = [(24, 8), (32, 8), (54, 2), (56, 2)] + [8, 16, 24, 32, 40].map { (64 + $0, 8) }
        default:
            var f = [UInt8](repeating: 0, count: 0x3000)
            put(multibootHeader(flags: 0x1_0000, extra: [0x100040, 0x100000, 0x101000, 0x102000, 0x100000]), at: 0x40, in: &f)
            base = f
            fields = [0x4c, 0x50, 0x54, 0x58, 0x5c].map { ($0, 4) }
        }
        var outcomes = (loaded: 0, refused: 0)
        for _ in 0..<3000 {
            var k = base
            for _ in 0..<Int.random(in: 1...4, using: &rng) {
                let f = fields.randomElement(using: &rng)!
                let top: UInt64 = f.width == 8 ? .max : (1 << (8 * UInt64(f.width))) - 1
                let v = [0, 1, top, top - 1, top / 2 + 1, top - 0xfff, 0x100000, rng.next() & top].randomElement(using: &rng)!
                put((0..<f.width).map { UInt8(truncatingIfNeeded: v >> (8 * UInt64($0))) }, at: f.offset, in: &k)
            }
            do {
                _ = try MultibootLoader.load(kernel: k, configuration: config(), into: memory)
                outcomes.loaded += 1
            } catch {
                #expect(error.subject == path)
                outcomes.refused += 1
            }
        }
        #expect(outcomes.refused > 0)
    }

    // MARK: Linux bzImage

    let linux = LinuxBootTests()

    func linuxRefusal(_ kernel: [UInt8], commandLine: String = "", initrd: [UInt8]? = nil, ramBelow4G: UInt64 = 64 << 20,
                      sourceLocation: SourceLocation = #_sourceLocation) throws -> LoaderError? {
        let memory = try linux.memory()
        return #expect(throws: LoaderError.self, sourceLocation: sourceLocation) {
            _ = try LinuxLoader.load(kernel: kernel, configuration: linux.config(commandLine: commandLine, initrd: initrd,
                                                                                 ramBelow4G: ramBelow4G), into: memory)
        }
    }

    @Test func bzImageFieldsNear2To64() throws {
        var h = LinuxBootTests.Header()
        h.relocatable = 0
        h.prefAddress = UInt64.max & ~0xfff
        #expect(try linuxRefusal(linux.makeBzImage(h))?.problem.contains("above 4 GiB") == true)
        h = LinuxBootTests.Header()
        h.initSize = .max
        #expect(try linuxRefusal(linux.makeBzImage(h))?.problem.contains("kernel too large for guest RAM") == true)
        for alignment: UInt32 in [0, 3, 0x8000_0000, .max] {
            h = LinuxBootTests.Header()
            h.kernelAlignment = alignment
            #expect(try linuxRefusal(linux.makeBzImage(h))?.problem.contains("kernel_alignment") == true, "\(alignment)")
        }
    }

    @Test func cmdlineSizeNear2To32IsCappedByTheArea() throws {
        var h = LinuxBootTests.Header()
        h.cmdlineSize = .max
        let e = try linuxRefusal(linux.makeBzImage(h), commandLine: String(repeating: "x", count: 0x70000))
        #expect(e?.problem.contains("accepts at most 458751") == true, "\(e?.problem ?? "")")
    }

    /// initrd_addr_max = 0xffffffff and a machine claiming 4 GiB below 4 GiB with only 64 MiB
    /// of RAM: the placement's end is computed without overflow and the write is refused.
    @Test func initrdAddrMaxAtTheTop() throws {
        var h = LinuxBootTests.Header()
        h.initrdAddrMax = .max
        let e = try linuxRefusal(linux.makeBzImage(h), initrd: [1, 2, 3], ramBelow4G: 1 << 32)
        #expect(e?.problem.contains("cannot write") == true || e?.problem.contains("not RAM") == true, "\(e?.description ?? "")")
    }

    @Test func setupSectsBeyondTheFile() throws {
        var k = linux.makeBzImage(payload: [])
        k[0x1F1] = 0xff                                              // 256 * 512 bytes of setup claimed
        #expect(try linuxRefusal(k)?.problem.contains("setup_sects 255") == true)
    }
}

/// SplitMix64, so a failing fuzz case reproduces from its seed.
struct SplitMix: RandomNumberGenerator {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

/// Host files that are not images: a device or pipe would be read until memory runs out.
@Suite struct HostFileTests {
    @Test(arguments: ["/dev/zero", "/dev/urandom", "/dev/null", "/tmp"])
    func nonRegularFilesAreRefused(_ path: String) {
        let e = #expect(throws: LoaderError.self) { _ = try MultibootLoader.readFile(path, what: "initrd") }
        #expect(e?.description == "\(path): cannot read initrd file: not a regular file")
    }

    @Test func missingFileStillSaysWhy() {
        let e = #expect(throws: LoaderError.self) { _ = try MultibootLoader.readFile("/nonexistent/k", what: "kernel") }
        #expect(e?.description.hasPrefix("/nonexistent/k: cannot read kernel file") == true)
    }
}
