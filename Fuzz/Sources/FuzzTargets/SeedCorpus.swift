/// Hand-made inputs for each target, written to `Fuzz/corpus/<target>/` (the corpus replay
/// test checks the committed files are exactly these; `VMM_FUZZ_WRITE_SEEDS=1 swift test
/// --filter FuzzCorpusTests` rewrites them). Each is a meaningful, well-formed case a fuzzer
/// would take long to find: a valid ring, a driver's initialisation sequence, bus enumeration,
/// a programmed MSI-X table, fw_cfg DMA, UART transmission, Multiboot ELF/a.out and bzImage
/// headers, the command lines of the README and Guests/README.md.
public enum SeedCorpus {
    public static func seeds(for target: FuzzTarget) -> [(name: String, bytes: [UInt8])] {
        switch target {
        case .virtqueue: return virtqueue()
        case .virtioPCI: return virtioPCI()
        case .pciConfig: return pciConfig()
        case .msix: return msix()
        case .fwcfg: return fwcfg()
        case .serial: return serial()
        case .memory: return memory()
        case .loader: return loader()
        case .cmdline: return cmdline()
        case .virtioNet: return virtioNet()
        case .virtioSerial: return virtioSerial()
        case .qmp: return qmp()
        }
    }

    // MARK: Helpers

    static func le<T: FixedWidthInteger>(_ v: T) -> [UInt8] { (0..<(T.bitWidth / 8)).map { UInt8(truncatingIfNeeded: v >> (8 * $0)) } }

    static func put(_ bytes: [UInt8], at offset: Int, in image: inout [UInt8]) {
        if image.count < offset + bytes.count { image += [UInt8](repeating: 0, count: offset + bytes.count - image.count) }
        image.replaceSubrange(offset..<(offset + bytes.count), with: bytes)
    }

    static func descriptor(_ addr: UInt64, _ len: UInt32, _ flags: UInt16, _ next: UInt16) -> [UInt8] {
        le(addr) + le(len) + le(flags) + le(next)
    }

    /// Rings for 8 entries at 0x1000/0x2000/0x3000: the available ring offers chain 0 → 1
    /// (readable then writable), chain 1 alone, and chain 2 pointing to an indirect table of two
    /// at 0x8000; the first `published` of them are available.
    static func ringImage(published: UInt16) -> [UInt8] {
        var img = [UInt8](repeating: 0, count: 0x9000)
        put(descriptor(0x5000, 16, 1, 1), at: 0x1000, in: &img)
        put(descriptor(0x6000, 64, 2, 0), at: 0x1010, in: &img)
        put(descriptor(0x8000, 32, 4, 0), at: 0x1020, in: &img)
        put(descriptor(0x7000, 8, 1, 1), at: 0x8000, in: &img)
        put(descriptor(0x7100, 128, 2, 0), at: 0x8010, in: &img)
        put(le(UInt16(0)) + le(published) + le(UInt16(0)) + le(UInt16(1)) + le(UInt16(2)), at: 0x2000, in: &img)
        return img
    }

    // MARK: Targets

    static func virtqueue() -> [(String, [UInt8])] {
        func seed(_ sizeLog: UInt8, eventIdx: Bool, _ rings: (UInt64, UInt64, UInt64), _ img: [UInt8]) -> [UInt8] {
            let b = FuzzInputBuilder()
            b.u8(sizeLog).u8(eventIdx ? 1 : 0).u64(rings.0).u64(rings.1).u64(rings.2).raw(img)
            return b.bytes
        }
        let low = (UInt64(0x1000), UInt64(0x2000), UInt64(0x3000))
        let high = (0 &- UInt64(0x10000) + 0x1000, 0 &- UInt64(0x10000) + 0x2000, 0 &- UInt64(0x10000) + 0x3000)
        return [
            ("two-chains", seed(3, eventIdx: false, low, ringImage(published: 2))),
            ("indirect-event-idx", seed(3, eventIdx: true, low, ringImage(published: 3))),
            ("rings-at-top-of-memory", seed(3, eventIdx: false, high, ringImage(published: 1))),
            ("nothing-published", seed(3, eventIdx: false, low, ringImage(published: 0))),
        ]
    }

    static func virtioPCI() -> [(String, [UInt8])] {
        let b = FuzzInputBuilder()
        let img = ringImage(published: 1)
        b.u16(UInt16(img.count)).raw(img)
        func common(_ off: UInt8, _ v: UInt64, _ size: UInt8) { b.u8(0).u8(off).u64(v).u8(size) }
        common(0x14, 1, 0); common(0x14, 3, 0)                    // ACKNOWLEDGE, DRIVER
        common(0x00, 1, 2); common(0x08, 1, 2); common(0x0c, 1, 2)  // VERSION_1
        common(0x14, 0xb, 0)                                      // FEATURES_OK
        common(0x16, 0, 1); common(0x18, 8, 1); common(0x1a, 0, 1)
        common(0x20, 0x1000, 2); common(0x24, 0, 2); common(0x28, 0x2000, 2); common(0x2c, 0, 2)
        common(0x30, 0x3000, 2); common(0x34, 0, 2); common(0x1c, 1, 1)
        b.u8(3).u16(0).u64(0xfee0_0000).u8(2)                    // MSI-X entry 0 address
        b.u8(3).u16(8).u64(0x41).u8(2)                            // data
        b.u8(3).u16(12).u64(0).u8(2)                              // unmask
        b.u8(5).u8(0x86).u32(0x8000).u8(1)                        // MSI-X enable in the capability
        common(0x14, 0xf, 0)                                      // DRIVER_OK
        b.u8(7).u8(0)                                             // kick
        b.u8(6).u8(0)                                             // served
        b.u8(4).u16(0x800).u8(2)                                  // PBA
        b.u8(1).u16(0x1000).u8(0)                                 // ISR
        common(0x14, 0, 0)                                        // reset
        return [("driver-init-kick-reset", b.bytes)]
    }

    static func pciConfig() -> [(String, [UInt8])] {
        let enumerate = FuzzInputBuilder()
        for devfn: UInt32 in [0, 8, 9, 11, 16, 24, 32] {
            for reg: UInt32 in [0x00, 0x08, 0x0c, 0x10, 0x14, 0x20, 0x2c, 0x34, 0x3c, 0x40] {
                enumerate.u8(0).u32(devfn << 8 | reg)
                enumerate.u8(2).u8(0).u8(2)
            }
            enumerate.u8(2).u8(2).u8(1).u8(2).u8(1).u8(0)         // narrower reads
        }
        let program = FuzzInputBuilder()
        program.u8(0).u32(2 << 11 | 0x10).u8(3).u8(0).u32(0xffff_ffff).u8(2).u8(2).u8(0).u8(2)   // size BAR0 by hand
        program.u8(3).u8(0).u32(0xfe00_0000).u8(2)
        program.u8(0).u32(2 << 11 | 0x04).u8(3).u8(0).u32(0x0007).u8(1)                          // command
        program.u8(5).u8(5).u8(0).u16(0).u8(0)                                                      // guest access to BAR0
        program.u8(0x87).u8(5)                                                                     // firmware-style sizing
        program.u8(0).u32(3 << 11 | 0x04).u8(3).u8(0).u32(0).u8(1)                                 // virtio decode off
        program.u8(6)
        program.u8(0x80).u32(0x0001_0000)                                                          // bus 1
        program.u8(2).u8(0).u8(2)
        return [("enumerate-bus", enumerate.bytes), ("program-bars", program.bytes)]
    }

    static func msix() -> [(String, [UInt8])] {
        let b = FuzzInputBuilder()
        b.u8(2)                                                   // 3 vectors
        for v: UInt8 in 0..<3 {
            b.u8(0).u8(v).u8(0).u64(0xfee0_0000)                  // address
            b.u8(0).u8(v).u8(8).u64(0x40 + UInt64(v))             // data
        }
        b.u8(3).u16(0x8000)                                       // enable
        b.u8(0).u8(0).u8(12).u64(0)                               // unmask 0
        b.u8(4).u8(0).u8(4).u8(1)                                 // notify 0, 1 (masked: pending)
        b.u8(5).u8(0)
        b.u8(0).u8(1).u8(12).u64(0)                               // unmask 1: pending delivered
        b.u8(3).u16(0xc000)                                       // function mask
        b.u8(4).u8(2).u8(3).u16(0)                                // disable
        return [("program-enable-mask", b.bytes)]
    }

    static func fwcfg() -> [(String, [UInt8])] {
        let b = FuzzInputBuilder()
        b.u16(0)
        b.u8(0).u16(0)                                            // signature
        for _ in 0..<5 { b.u8(1) }
        b.u8(0).u16(0x19)                                         // file directory
        for _ in 0..<8 { b.u8(1) }
        b.u8(3).u16(0x800).u32(0x0019_0000 | 0x08 | 0x02).u32(64).u16(0x1000)      // DMA select + read
        b.u8(3).u16(0x800).u32(0x0021_0000 | 0x08 | 0x04).u32(65600).u16(0)         // select etc/big, skip
        b.u8(3).u16(0x800).u32(0x02).u32(0x100).u16(0x2000)                          // read the rest
        b.u8(3).u16(0x800).u32(0x10).u32(4).u16(0x3000)                              // write: refused
        b.u8(0x83).u64(0 &- 8).u32(0x02).u32(16).u16(0x100)                          // descriptor straddling 2^64
        b.u8(0x82).u8(4).u8(3)                                                       // DMA signature read
        return [("select-read-dma", b.bytes)]
    }

    static func serial() -> [(String, [UInt8])] {
        func out(_ b: inout FuzzInputBuilder, _ reg: UInt8, _ v: UInt8) { b.u8(reg << 5).u8(v) }
        func inb(_ b: inout FuzzInputBuilder, _ reg: UInt8) { b.u8(reg << 5 | 1) }
        var hello = FuzzInputBuilder()
        out(&hello, 3, 0x83); out(&hello, 0, 1); out(&hello, 1, 0); out(&hello, 3, 3)
        out(&hello, 1, 0x0f)
        for c in "Hi!\n".utf8 { inb(&hello, 5); out(&hello, 0, c) }
        inb(&hello, 2); inb(&hello, 2)
        var loop = FuzzInputBuilder()
        out(&loop, 4, 0x1f); out(&loop, 2, 0xc7); out(&loop, 1, 0x05)
        for c in "loopback".utf8 { out(&loop, 0, c) }
        inb(&loop, 2); inb(&loop, 5); inb(&loop, 0); inb(&loop, 6); out(&loop, 4, 0)
        loop.u8(2 << 5 | 2).u8(3).u64(0x0102_0304_0506_0708)                         // 8-byte write
        var input = FuzzInputBuilder()
        out(&input, 1, 1)
        input.u8(UInt8(16 << 2 | 3)).raw(Array("0123456789abcdef".utf8))
        for _ in 0..<4 { inb(&input, 2); inb(&input, 5); inb(&input, 0) }
        out(&input, 2, 0x01); input.u8(UInt8(20 << 2 | 3)).raw(Array("fifo fifo fifo fifo!".utf8))
        for _ in 0..<20 { inb(&input, 0) }
        return [("transmit", hello.bytes), ("loopback-fifo", loop.bytes), ("receive", input.bytes)]
    }

    static func memory() -> [(String, [UInt8])] {
        // Deterministic pseudo-random scripts (SplitMix64): trees and accesses of every kind.
        (0..<4).map { n -> (String, [UInt8]) in
            var state = 0x9E37_79B9_7F4A_7C15 &* UInt64(n + 1)
            var bytes: [UInt8] = []
            for _ in 0..<96 {
                state &+= 0x9E37_79B9_7F4A_7C15
                var z = state
                z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
                z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
                bytes += le(z ^ (z >> 31))
            }
            return ("random-tree-\(n)", bytes)
        }
    }

    static func multibootHeader(flags: UInt32, extra: [UInt32] = []) -> [UInt8] {
        let magic: UInt32 = 0x1BAD_B002
        return ([magic, flags, 0 &- (magic &+ flags)] + extra).flatMap { le($0) }
    }

    static func elf(is64: Bool) -> [UInt8] {
        var f: [UInt8] = [0x7F, 0x45, 0x4C, 0x46, is64 ? 2 : 1, 1, 1, 0] + [UInt8](repeating: 0, count: 8)
        f += le(UInt16(2)) + le(UInt16(is64 ? 62 : 3)) + le(UInt32(1))
        if is64 {
            f += le(UInt64(0x100020)) + le(UInt64(64)) + le(UInt64(0)) + le(UInt32(0)) + le(UInt16(64)) + le(UInt16(56)) + le(UInt16(2))
            f += le(UInt16(0)) + le(UInt16(0)) + le(UInt16(0))
            for (off, paddr, filesz, memsz) in [(UInt64(0x1000), UInt64(0x100000), UInt64(0x100), UInt64(0x2000)),
                                                (UInt64(0x1100), UInt64(0x103000), UInt64(0x40), UInt64(0x40))] {
                f += le(UInt32(1)) + le(UInt32(5)) + le(off) + le(paddr) + le(paddr) + le(filesz) + le(memsz) + le(UInt64(0x1000))
            }
        } else {
            f += le(UInt32(0x100020)) + le(UInt32(52)) + le(UInt32(0)) + le(UInt32(0)) + le(UInt16(52)) + le(UInt16(32)) + le(UInt16(1))
            f += le(UInt16(0)) + le(UInt16(0)) + le(UInt16(0))
            f += le(UInt32(1)) + le(UInt32(0x1000)) + le(UInt32(0x100000)) + le(UInt32(0x100000))
            f += le(UInt32(0x100)) + le(UInt32(0x2000)) + le(UInt32(5)) + le(UInt32(0x1000))
        }
        put(multibootHeader(flags: 0x3), at: 0x200, in: &f)
        put((0..<0x140).map { UInt8(truncatingIfNeeded: $0 &* 7) }, at: 0x1000, in: &f)
        return f
    }

    static func aout() -> [UInt8] {
        var f = multibootHeader(flags: 0x0001_0003, extra: [0x100000, 0x100000, 0x100100, 0x102000, 0x100020])
        put((0..<0xe0).map { UInt8(truncatingIfNeeded: $0) }, at: 0x20, in: &f)
        return f
    }

    static func bzImage() -> [UInt8] {
        var f = [UInt8](repeating: 0, count: 0x400)
        f[0x1f1] = 1                                             // setup_sects: kernel at 0x400
        put(le(UInt16(0xAA55)), at: 0x1fe, in: &f)
        f[0x200] = 0xEB; f[0x201] = 0x66                          // jump over the header to 0x268
        put(le(UInt32(0x5372_6448)), at: 0x202, in: &f)           // "HdrS"
        put(le(UInt16(0x020f)), at: 0x206, in: &f)
        f[0x211] = 0x01                                          // LOADED_HIGH
        put(le(UInt32(0x37ff_ffff)), at: 0x22c, in: &f)
        put(le(UInt32(0x10_0000)), at: 0x230, in: &f)
        f[0x234] = 1                                             // relocatable
        put(le(UInt16(1)), at: 0x236, in: &f)                     // XLF_KERNEL_64
        put(le(UInt32(2048)), at: 0x238, in: &f)
        put(le(UInt64(0x100000)), at: 0x258, in: &f)
        put(le(UInt32(0x20000)), at: 0x260, in: &f)
        f += (0..<0x800).map { UInt8(truncatingIfNeeded: $0 &* 3) }
        return f
    }

    static func loader() -> [(String, [UInt8])] {
        func seed(_ layout: UInt8, _ cmdline: String, _ modules: [(String, [UInt8])], _ kernel: [UInt8]) -> [UInt8] {
            let b = FuzzInputBuilder()
            b.u8(layout | UInt8(modules.count) << 6).shortString(cmdline)
            for m in modules { b.shortString(m.0).shortBytes(m.1) }
            return b.raw(kernel).bytes
        }
        return [
            ("multiboot-elf32", seed(0, "console=ttyS0", [("a=1", [1, 2, 3, 4]), ("b", Array(repeating: 9, count: 100))], elf(is64: false))),
            ("multiboot-elf64", seed(2, "", [], elf(is64: true))),
            ("multiboot-aout", seed(1, "x y z", [("m", [7])], aout())),
            ("linux-bzimage", seed(0, "console=ttyS0 root=/dev/vda", [("initrd", Array(repeating: 0x42, count: 200))], bzImage())),
        ]
    }

    static func cmdline() -> [(String, [UInt8])] {
        let lines: [[String]] = [
            ["-machine", "accel=kvm", "-nodefaults", "-display", "none", "-serial", "stdio",
             "-device", "isa-debug-exit,iobase=0xf4,iosize=0x4", "-device", "pc-testdev", "-device", "pci-testdev",
             "-kernel", "K", "-append", "ARGS", "-initrd", "MOD1 ARGS,MOD2", "-smp", "2", "-m", "256M"],
            ["-nodefaults", "-device", "pc-testdev", "-device", "isa-debug-exit,iobase=0xf4,iosize=0x4",
             "-vnc", "none", "-serial", "stdio", "-device", "pci-testdev", "-machine", "accel=kvm,kernel_irqchip=split",
             "-kernel", "hello", "-smp", "2", "-cpu", "qemu64,+x2apic,+tsc-deadline",
             "-global", "kvm-pit.lost_tick_policy=discard", "-m", "256", "-append", "x=1"],
            ["-enable-kvm", "-drive", "file=disk.img,if=none,id=d0,format=raw,readonly=on",
             "-device", "virtio-blk-pci,drive=d0,serial=abc", "-drive", "file=b.img,if=virtio,format=raw",
             "-object", "rng-random,id=r0,filename=/dev/urandom", "-device", "virtio-rng-pci,rng=r0",
             "-kernel", "k", "-m", "1.5G", "-smp", "cpus=2,maxcpus=4,sockets=2,cores=2"],
            ["-M", "pc-i440fx-7.2", "-accel", "kvm", "-m", "size=128M,slots=2,maxmem=1G", "-serial", "file:/tmp/out",
             "-no-reboot", "-no-acpi", "-net", "none", "-vga", "std", "-rtc", "base=utc", "-d", "int", "-kernel", "k",
             "-initrd", "a,,b c,d", "-name", "guest=g1"],
        ]
        return lines.enumerated().map { ("command-line-\($0.offset)", Array($0.element.joined(separator: "\u{0}").utf8)) }
    }
}
