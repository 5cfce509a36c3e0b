import Testing
@testable import Loader

/// The fw_cfg images QEMU builds for its option ROMs when `-kernel` runs with firmware:
/// multiboot_dma.bin's one buffer plus Multiboot information (QEMU: load_multiboot()), and
/// linuxboot_dma.bin's setup, kernel, command line and initrd (QEMU: x86_load_linux()).
@Suite struct FirmwareImageTests {
    func u32(_ b: [UInt8], _ at: Int) -> UInt32 { (0..<4).reduce(0) { $0 | UInt32(b[at + $1]) << (8 * UInt32($1)) } }
    func u16(_ b: [UInt8], _ at: Int) -> UInt32 { UInt32(b[at]) | UInt32(b[at + 1]) << 8 }
    func cString(_ b: [UInt8], _ at: Int) -> String { String(decoding: b[at...].prefix { $0 != 0 }, as: UTF8.self) }

    // MARK: Multiboot

    /// The buffer from the kernel's lowest address: kernel and BSS, then on the next page the
    /// module list, the command lines ("FILE ARGS" of each module, then "KERNEL CMDLINE") and
    /// "qemu"; each module on its own page after that. The information points into it.
    @Test func multibootBufferIsQEMUsLayout() throws {
        let code = pattern(0x1800, seed: 3)
        let kernel = makeELF(is64: false, entry: 0x10_0010, segments: [TestSegment(paddr: 0x10_0000, data: code, memsz: 0x2100, offset: 0x1000)])
        let modules: [String: [UInt8]] = ["/m/one": pattern(100, seed: 9), "/m/two": pattern(5000, seed: 1)]
        let image = try MultibootFirmwareImage.build(
            kernel: kernel, path: "/k/kernel.elf", commandLine: "a=1 b", initrd: "/m/one x y,/m/two", ramBelow4G: 128 << 20,
            readFile: { path throws(LoaderError) in
                guard let data = modules[path] else { throw LoaderError(path, "missing") }
                return data
            })
        #expect(image.loadAddress == 0x10_0000 && image.entry == 0x10_0010)
        #expect(Array(image.data[0..<0x1800]) == code)
        #expect(image.data[0x1800..<0x2100].allSatisfy { $0 == 0 }, "BSS is zero")
        // Module list on the page after the kernel's 0x2100 bytes.
        let list = 0x3000
        #expect(u32(image.info, 20) == 2 && u32(image.info, 24) == 0x10_0000 + UInt32(list))
        let m0 = (start: u32(image.data, list), end: u32(image.data, list + 4), line: u32(image.data, list + 8))
        let m1 = (start: u32(image.data, list + 16), end: u32(image.data, list + 20), line: u32(image.data, list + 24))
        #expect(cString(image.data, Int(m0.line - 0x10_0000)) == "/m/one x y")
        #expect(cString(image.data, Int(m1.line - 0x10_0000)) == "/m/two")
        #expect(m0.line == 0x10_0000 + UInt32(list + 32), "command lines follow the list")
        // Command lines, then "qemu", fit in the rest of that page; modules start on the next.
        #expect(m0.start == 0x10_4000 && m0.end == 0x10_4000 + 100)
        #expect(m1.start == 0x10_5000 && m1.end == 0x10_5000 + 5000)
        #expect(Array(image.data[Int(m1.start - 0x10_0000)..<Int(m1.end - 0x10_0000)]) == modules["/m/two"])
        #expect(image.data.count == 0x7000, "each module padded to a page")
        #expect(cString(image.data, Int(u32(image.info, 16) - 0x10_0000)) == "/k/kernel.elf a=1 b")
        #expect(cString(image.data, Int(u32(image.info, 64) - 0x10_0000)) == "qemu")
        // flags MEMORY|BOOT_DEVICE|CMDLINE|MODULES|MMAP|BOOTLOADER, no BIOS drive, map at 0x9000.
        #expect(u32(image.info, 0) == 0x24f && u32(image.info, 12) == 0x8000_ffff && u32(image.info, 48) == 0x9000)
        #expect(image.info.count == 88)
    }

    @Test func multibootRefusesWhatQEMURefuses() throws {
        let elf64 = makeELF(is64: true, entry: 0x10_0000, segments: [TestSegment(paddr: 0x10_0000, data: [0xf4], memsz: 1, offset: 0x1000)])
        #expect(throws: LoaderError("k64", "Cannot load x86-64 image, give a 32bit one.")) {
            try MultibootFirmwareImage.build(kernel: elf64, path: "k64", commandLine: "", initrd: nil, ramBelow4G: 128 << 20,
                                             readFile: { p throws(LoaderError) in throw LoaderError(p, "unused") })
        }
        let big = makeELF(is64: false, entry: 0x10_0000, segments: [TestSegment(paddr: 0x10_0000, data: [0xf4], memsz: 1, offset: 0x1000)])
        let error = #expect(throws: LoaderError.self) {
            try MultibootFirmwareImage.build(kernel: big, path: "k", commandLine: "", initrd: "huge", ramBelow4G: 2 << 20,
                                             readFile: { _ throws(LoaderError) in [UInt8](repeating: 1, count: 2 << 20) })
        }
        #expect(error?.subject == "huge" && error?.problem.hasPrefix("no room for the module") == true)
    }

    // MARK: Linux

    /// A bzImage of `protocol` with `setupSects` setup sectors and a 4 KiB payload.
    func bzImage(protocol version: UInt16, setupSects: UInt8 = 1, loadedHigh: Bool = true, initrdMax: UInt32 = 0x7fff_ffff,
                 xloadflags: UInt16 = 0) -> [UInt8] {
        var f = [UInt8](repeating: 0, count: (Int(setupSects) + 1) * 512)
        put([setupSects], at: 0x1f1, in: &f)
        put(le(UInt16(0xaa55)), at: 0x1fe, in: &f)
        put(le(UInt32(0x5372_6448)), at: 0x202, in: &f)
        put(le(version), at: 0x206, in: &f)
        put([loadedHigh ? 1 : 0], at: 0x211, in: &f)
        put(le(initrdMax), at: 0x22c, in: &f)
        put(le(xloadflags), at: 0x236, in: &f)
        return f + pattern(4096, seed: 5)
    }

    @Test func linuxHighKernelItems() throws {
        let file = bzImage(protocol: 0x020f)
        let image = try LinuxFirmwareImage.build(kernel: file, path: "bz", commandLine: "console=ttyS0 vga=0x31f", initrd: pattern(10000, seed: 2),
                                                 initrdPath: "rd", ramBelow4G: 128 << 20)
        #expect(image.setupAddress == 0x1_0000 && image.kernelAddress == 0x10_0000 && image.commandLineAddress == 0x2_0000)
        #expect(image.setup.count == 1024 && image.kernel == Array(file[1024...]))
        #expect(image.commandLine == Array("console=ttyS0 vga=0x31f".utf8) + [0])
        // The initrd ends below RAM minus QEMU's 0x28000 for ACPI, page aligned down.
        let top: UInt64 = (128 << 20) - 0x2_8000 - 1
        let initrdAddress = UInt32((top - 10000) & ~4095)
        #expect(image.initrdAddress == initrdAddress)
        #expect(image.initrd == pattern(10000, seed: 2))
        let s = image.setup
        #expect(s[0x210] == 0xb0 && s[0x211] == 0x81)
        #expect(u16(s, 0x224) == 0xfe00 && u32(s, 0x228) == 0x2_0000)
        #expect(u16(s, 0x1fa) == 0x31f && u32(s, 0x21c) == 10000)
        #expect(u32(s, 0x218) == image.initrdAddress)
        #expect(Array(s[0x300...]) == Array(file[0x300..<1024]), "past the header the setup is the file's")
    }

    /// Older protocols put the setup at 0x90000 and the command line below 0x9a000 (2.00/2.01
    /// through the old 0xA33F magic); a zImage's kernel goes to 0x10000.
    @Test(arguments: [(UInt16(0x0201), true, UInt32(0x10_0000)), (0x0200, false, 0x1_0000)])
    func linuxOldProtocols(version: UInt16, loadedHigh: Bool, kernelAddress: UInt32) throws {
        let image = try LinuxFirmwareImage.build(kernel: bzImage(protocol: version, loadedHigh: loadedHigh), path: "bz",
                                                 commandLine: "root=/dev/sda", initrd: nil, initrdPath: nil, ramBelow4G: 128 << 20)
        #expect(image.setupAddress == 0x9_0000 && image.kernelAddress == kernelAddress)
        #expect(image.commandLineAddress == 0x9a000 - 16 && image.initrdAddress == nil)
        let s = image.setup
        let offset: UInt32 = 0x9a000 - 16 - 0x9_0000
        #expect(u16(s, 0x20) == 0xa33f && u16(s, 0x22) == offset && u32(s, 0x228) == 0)
        let heapEnd: UInt32 = version >= 0x201 ? 0x9a000 - 16 - 0x9_0000 - 0x200 : 0
        #expect(u16(s, 0x224) == heapEnd)
    }

    @Test func linuxVideoModes() throws {
        for (line, mode) in [("vga=normal", UInt32(0xffff)), ("a vga=ext b", 0xfffe), ("vga=ask", 0xfffd), ("vga=791", 791),
                             ("vga=0x317 quiet", 0x317), ("vga=0777", 0o777)] {
            #expect(try LinuxFirmwareImage.videoMode(line, path: "bz") == mode, "\(line)")
        }
        #expect(try LinuxFirmwareImage.videoMode("quiet", path: "bz") == nil)
        for bad in ["vga=", "vga=12x", "vga=0x"] {
            #expect(throws: LoaderError("bz", "invalid 'vga=' kernel parameter.")) { try LinuxFirmwareImage.videoMode(bad, path: "bz") }
        }
    }

    @Test func linuxRefusals() throws {
        var truncated = bzImage(protocol: 0x020f, setupSects: 8)
        truncated.removeLast(truncated.count - 1000)
        #expect(throws: LoaderError("bz", "invalid kernel header")) {
            try LinuxFirmwareImage.build(kernel: truncated, path: "bz", commandLine: "", initrd: nil, initrdPath: nil, ramBelow4G: 128 << 20)
        }
        #expect(throws: LoaderError("rd", "linux kernel too old to load a ram disk")) {
            try LinuxFirmwareImage.build(kernel: bzImage(protocol: 0x0104), path: "bz", commandLine: "", initrd: [1], initrdPath: "rd",
                                         ramBelow4G: 128 << 20)
        }
        let error = #expect(throws: LoaderError.self) {
            try LinuxFirmwareImage.build(kernel: bzImage(protocol: 0x020f, initrdMax: 0xffff), path: "bz", commandLine: "",
                                         initrd: [UInt8](repeating: 0, count: 0x10000), initrdPath: "rd", ramBelow4G: 128 << 20)
        }
        #expect(error?.subject == "rd" && error?.problem.hasPrefix("initrd is too large") == true)
        // XLF_CAN_BE_LOADED_ABOVE_4G from protocol 2.12 lifts initrd_addr_max; RAM still caps it.
        let above = try LinuxFirmwareImage.build(kernel: bzImage(protocol: 0x020c, initrdMax: 0xffff, xloadflags: 0x02), path: "bz",
                                                 commandLine: "", initrd: [1, 2], initrdPath: "rd", ramBelow4G: 128 << 20)
        let expected: UInt64 = ((128 << 20) - 0x2_8000 - 1 - 2) & ~4095
        #expect(above.initrdAddress == UInt32(expected))
    }
}
