import VMMSys
import Memory

/// Loads a Linux x86 bzImage into guest RAM following the Linux x86 boot protocol
/// (`Documentation/arch/x86/boot.rst`), as QEMU's `-kernel` does for a Linux image, but for
/// the 32-bit and 64-bit entry protocols only: the kernel's 16-bit setup code is not run.
///
/// Guest layout:
///
///     0x7000              zero page (`struct boot_params`, 4 KiB). QEMU keeps the setup
///                         code and zero page in a "real mode" area; as the setup code is not
///                         run here only the zero page is needed, and 0x7000 lies clear of the
///                         BIOS data area below 0x500 and of the boot sector address 0x7c00.
///     0x20000             the NUL-terminated command line (QEMU's address for it)
///     0x100000            the protected-mode kernel (the file after its setup sectors); 1 MiB
///                         for every bzImage, as QEMU does — a relocatable kernel moves itself
///                         to `pref_address` / `kernel_alignment` when it decompresses
///     top of RAM          the initrd, page aligned, as high as allowed below
///                         min(`initrd_addr_max` + 1, `ramBelow4G`)
///
/// Requires boot protocol 2.06 or later and a bzImage (`LOADED_HIGH`). Everything is
/// validated before the first guest byte is written, so a refused kernel or initrd leaves
/// guest RAM untouched; bad input is reported as a `LoaderError`, never a trap.
///
/// This loader is written to the boot protocol and unit-tested with synthesized images; it
/// has not been verified by booting a real Linux kernel, because this host's KVM cannot run
/// stock Linux.
///
/// QEMU: `x86_load_linux()` (hw/i386/x86.c) and its `linuxboot_dma.bin` option ROM, which
/// copies the setup code too and enters it in real mode.
public enum LinuxLoader {
    /// Where the zero page goes.
    public static let bootParamsAddress: UInt64 = 0x7000
    /// Where the command line goes.
    public static let commandLineAddress: UInt64 = 0x20000
    /// Where the protected-mode kernel goes.
    public static let kernelLoadAddress: UInt64 = 0x100000
    /// Limit on the command line's bytes (with its NUL) whatever `cmdline_size` says, so it
    /// stays in low memory below 0x90000.
    static let commandLineAreaSize: UInt64 = 0x70000
    static let bootParamsSize = 4096
    static let pageSize: UInt64 = 4096
    /// `boot_params` offsets outside the setup header.
    enum BootParams {
        static let e820Entries = 0x1E8
        static let e820Table = 0x2D0
        static let e820Max = 128
    }

    /// Whether `file` carries a Linux setup header: "HdrS" at 0x202 and 0xAA55 at 0x1FE.
    /// QEMU: the "HdrS" test in `x86_load_linux()`, which tries Multiboot otherwise.
    public static func isLinuxKernel(_ file: [UInt8]) -> Bool {
        LinuxSetupHeader.isPresent(in: ByteReader(bytes: file))
    }

    /// Reads the kernel from `configuration.kernelPath` and, when `configuration.initrd` is
    /// `nil`, the initrd from `configuration.initrdPath`; see `load(kernel:configuration:into:)`.
    public static func load(configuration: LinuxBootConfiguration,
                            into memory: GuestMemory) throws(LoaderError) -> LinuxBootInfo {
        let kernel = try MultibootLoader.readFile(configuration.kernelPath, what: "kernel")
        var c = configuration
        if c.initrd == nil, let path = c.initrdPath {
            c.initrd = try MultibootLoader.readFile(path, what: "initrd")
        }
        return try load(kernel: kernel, configuration: c, into: memory)
    }

    /// Loads the bzImage `kernel` (the file's bytes), the command line, the initrd and the
    /// zero page.
    ///
    /// - Throws: `LoaderError` naming the kernel file (or the initrd file for initrd
    ///   problems) and what is wrong.
    public static func load(kernel: [UInt8], configuration c: LinuxBootConfiguration,
                            into memory: GuestMemory) throws(LoaderError) -> LinuxBootInfo {
        let path = c.kernelPath
        let reader = ByteReader(bytes: kernel)
        let header = try LinuxSetupHeader.parse(reader, path: path)
        guard header.loadFlags & LinuxSetupHeader.loadedHigh != 0 else {
            throw LoaderError(path, "not a bzImage (LOADED_HIGH is clear in loadflags); "
                + "zImage kernels loaded at 0x10000 are not supported")
        }

        // The protected-mode kernel.
        let kernelOffset = header.kernelOffset
        guard kernelOffset < reader.count else {
            throw LoaderError(path, "file is truncated: setup_sects \(header.setupSects) puts the "
                + "protected-mode kernel at offset \(hex(kernelOffset)), but the file has only "
                + "\(reader.count) bytes")
        }
        let payloadSize = reader.count - kernelOffset
        let load = kernelLoadAddress
        let kernelRange = try kernelFootprint(header, load: load, payloadSize: payloadSize, path: path)

        let limit = min(c.ramBelow4G, 1 << 32)
        let ram = c.memoryMap.isEmpty ? [0..<limit] : ramRanges(c.memoryMap, below: limit)
        func inRAM(_ r: Range<UInt64>) -> Bool {
            ram.contains { $0.lowerBound <= r.lowerBound && r.upperBound <= $0.upperBound }
        }
        guard inRAM(kernelRange) else {
            throw LoaderError(path, "kernel too large for guest RAM: it needs "
                + "\(hexRange(kernelRange.lowerBound, kernelRange.upperBound)), which is not all RAM "
                + "below \(hex(limit))")
        }

        // The command line.
        var cmdline = Array(c.commandLine.utf8)
        guard !cmdline.contains(0) else {
            throw LoaderError(path, "kernel command line contains a NUL byte")
        }
        let maxLength = min(UInt64(header.version >= 0x0206 ? header.cmdlineSize : 255),
                            commandLineAreaSize - 1)
        guard UInt64(cmdline.count) <= maxLength else {
            throw LoaderError(path, "kernel command line is \(cmdline.count) bytes; the kernel "
                + "accepts at most \(maxLength) (cmdline_size)")
        }
        cmdline.append(0)
        let cmdlineRange = commandLineAddress..<(commandLineAddress + UInt64(cmdline.count))
        let zeroPageRange = bootParamsAddress..<(bootParamsAddress + UInt64(bootParamsSize))
        for (r, what) in [(zeroPageRange, "zero page"), (cmdlineRange, "command line")] where !inRAM(r) {
            throw LoaderError(path, "no room for the \(what): \(hexRange(r.lowerBound, r.upperBound)) "
                + "is not RAM")
        }

        guard c.memoryMap.count <= BootParams.e820Max else {
            throw LoaderError(path, "memory map has \(c.memoryMap.count) entries; boot_params holds "
                + "at most \(BootParams.e820Max)")
        }

        // The initrd, as high as allowed.
        var initrdRange: Range<UInt64>?
        if let initrd = c.initrd, !initrd.isEmpty {
            initrdRange = try placeInitrd(size: UInt64(initrd.count), subject: c.initrdPath ?? "initrd",
                                          header: header, limit: limit, ram: ram, kernel: kernelRange)
        }

        // The zero page: the file's setup header, then the loader's fields.
        var zeroPage = ByteWriter()
        zeroPage.appendZeros(bootParamsSize)
        let headerStart = Int(LinuxSetupHeader.Offset.setupSects)
        for i in headerStart..<Int(header.headerEnd) { zeroPage.set(kernel[i], at: i) }
        typealias O = LinuxSetupHeader.Offset
        zeroPage.set(UInt16(0xFFFF), at: Int(O.vidMode))  // "normal" text mode
        zeroPage.set(UInt8(0xFF), at: Int(O.typeOfLoader))  // undefined loader ID
        zeroPage.set(header.loadFlags | LinuxSetupHeader.canUseHeap, at: Int(O.loadFlags))
        zeroPage.set(UInt32(load), at: Int(O.code32Start))
        zeroPage.set(UInt32(initrdRange?.lowerBound ?? 0), at: Int(O.ramdiskImage))
        zeroPage.set(UInt32(initrdRange.map { $0.upperBound - $0.lowerBound } ?? 0), at: Int(O.ramdiskSize))
        // Heap end: the end of a 64 KiB setup segment, minus 0x200 as the protocol asks.
        zeroPage.set(UInt16(0xFE00), at: Int(O.heapEndPtr))
        zeroPage.set(UInt8(0), at: Int(O.extLoaderVer))
        zeroPage.set(UInt8(0), at: Int(O.extLoaderType))
        zeroPage.set(UInt32(commandLineAddress), at: Int(O.cmdLinePtr))
        zeroPage.set(UInt8(c.memoryMap.count), at: BootParams.e820Entries)
        for (i, e) in c.memoryMap.enumerated() {
            let at = BootParams.e820Table + 20 * i
            zeroPage.set(e.base, at: at)
            zeroPage.set(e.length, at: at + 8)
            zeroPage.set(e.kind.rawValue, at: at + 16)
        }

        try memory.write(zeroPage.bytes, at: bootParamsAddress, for: path, "zero page")
        try memory.write(cmdline, at: commandLineAddress, for: path, "command line")
        try memory.write(kernel[Int(kernelOffset)...], at: load, for: path, "protected-mode kernel")
        if let initrd = c.initrd, let r = initrdRange {
            try memory.write(initrd, at: r.lowerBound, for: c.initrdPath ?? "initrd", "initrd")
        }
        return LinuxBootInfo(entryPoint64: header.has64BitEntry ? load + 0x200 : nil,
                             entryPoint32: UInt32(load), bootParamsAddress: bootParamsAddress,
                             kernelLoadAddress: load, kernelRange: kernelRange, initrdRange: initrdRange,
                             commandLineAddress: commandLineAddress, protocolVersion: header.version)
    }

    /// The map's RAM entries cut at `limit`, sorted, with touching or overlapping entries
    /// merged so a placement may span several.
    static func ramRanges(_ map: [E820Entry], below limit: UInt64) -> [Range<UInt64>] {
        let pieces = map.filter { $0.kind == .ram }.compactMap { e -> Range<UInt64>? in
            let end = min(e.length > UInt64.max - e.base ? UInt64.max : e.base + e.length, limit)
            return e.base < end ? e.base..<end : nil
        }.sorted { $0.lowerBound < $1.lowerBound }
        var merged: [Range<UInt64>] = []
        for r in pieces {
            if let last = merged.last, r.lowerBound <= last.upperBound {
                merged[merged.count - 1] = last.lowerBound..<max(last.upperBound, r.upperBound)
            } else {
                merged.append(r)
            }
        }
        return merged
    }

    /// The memory the kernel claims: its loaded bytes and, from protocol 2.10, `init_size`
    /// bytes from where it runs — `pref_address`, or for a relocatable kernel the load address
    /// aligned to `kernel_alignment` if that is higher.
    static func kernelFootprint(_ header: LinuxSetupHeader, load: UInt64, payloadSize: UInt64,
                                path: String) throws(LoaderError) -> Range<UInt64> {
        var start = load
        var end = load + payloadSize
        guard let pref = header.prefAddress, let initSize = header.initSize else { return start..<end }
        var runtime = pref
        if header.relocatable {
            let align = UInt64(header.kernelAlignment)
            guard align != 0, align & (align - 1) == 0, align <= 1 << 30 else {
                throw LoaderError(path, "kernel_alignment \(hex(align)) is not a power of two up to 1 GiB")
            }
            runtime = max(runtime, (load + align - 1) & ~(align - 1))
        }
        guard runtime <= 1 << 32 else {
            throw LoaderError(path, "kernel too large for guest RAM: it runs at pref_address "
                + "\(hex(runtime)), above 4 GiB")
        }
        start = min(start, runtime)
        end = max(end, runtime + UInt64(initSize))
        return start..<end
    }

    /// The highest page-aligned place for `size` bytes inside `ram`, ending at or below
    /// min(`initrd_addr_max` + 1, `limit`), and not overlapping the kernel.
    static func placeInitrd(size: UInt64, subject: String, header: LinuxSetupHeader, limit: UInt64,
                            ram: [Range<UInt64>], kernel: Range<UInt64>) throws(LoaderError) -> Range<UInt64> {
        let top = min(UInt64(header.initrdAddrMax) + 1, limit)
        var best: UInt64?
        for r in ram {
            let end = min(r.upperBound, top)
            guard end > r.lowerBound, end - r.lowerBound >= size else { continue }
            let start = (end - size) & ~(pageSize - 1)
            if start >= r.lowerBound, best.map({ start > $0 }) ?? true { best = start }
        }
        guard let start = best else {
            throw LoaderError(subject, "initrd too big: \(size) bytes do not fit in guest RAM below "
                + "\(hex(top)) (the kernel's initrd_addr_max is \(hex(header.initrdAddrMax)))")
        }
        let range = start..<(start + size)
        guard !range.overlaps(kernel) else {
            throw LoaderError(subject, "initrd too big: placed at the top of RAM below \(hex(top)) it "
                + "would occupy \(hexRange(range.lowerBound, range.upperBound)), overlapping the kernel "
                + "at \(hexRange(kernel.lowerBound, kernel.upperBound))")
        }
        return range
    }
}
