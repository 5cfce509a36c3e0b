import VMMSys
/// A Multiboot kernel as QEMU hands it to its "multiboot_dma.bin" option ROM through fw_cfg,
/// for `-kernel` with firmware: one buffer from the kernel's load address holding the kernel
/// and its BSS, then (page aligned) the module list, the command lines and the boot loader
/// name "qemu", then each module on its own page; and the 88-byte Multiboot information the
/// ROM copies to 0x9500, whose memory map (at 0x9000) and memory sizes the ROM fills in from the
/// firmware's E820 map before it enters the kernel in 32-bit protected mode (EAX 0x2BADB002,
/// EBX 0x9500). QEMU: load_multiboot() (hw/i386/multiboot.c), FW_CFG_KERNEL_* and
/// FW_CFG_INITRD_* items; pc-bios/optionrom/multiboot.S.
public struct MultibootFirmwareImage: Sendable, Equatable {
    /// Where the ROM builds the E820 memory map and puts the information. QEMU: ADDR_E820_MAP, ADDR_MBI.
    public static let mmapAddress: UInt32 = 0x9000
    /// Where the ROM copies the Multiboot information (EBX at entry). QEMU: ADDR_MBI.
    public static let infoAddress: UInt32 = 0x9500
    /// The option ROM's file (the DMA flavour: this machine's fw_cfg has the DMA interface).
    public static let romName = "multiboot_dma.bin"
    static let infoSize = 88, moduleEntrySize = 16
    static let page: UInt64 = 4096

    /// FW_CFG_KERNEL_ENTRY, FW_CFG_KERNEL_ADDR and FW_CFG_KERNEL_DATA (its size is FW_CFG_KERNEL_SIZE).
    public let entry: UInt32
    /// Where `data` is loaded (FW_CFG_KERNEL_ADDR).
    public let loadAddress: UInt32
    /// The kernel, BSS, module list, command lines and modules (FW_CFG_KERNEL_DATA).
    public let data: [UInt8]
    /// FW_CFG_INITRD_DATA, to be copied to `infoAddress` (FW_CFG_INITRD_ADDR).
    public let info: [UInt8]

    /// Builds the image. `initrd` is `-initrd` as given (QEMU's module list: "FILE ARGS,FILE2",
    /// ",," a literal comma); `readFile` reads a module.
    /// - Throws: `LoaderError` naming the kernel or module: an x86-64 ELF (QEMU: "Cannot load
    ///   x86-64 image, give a 32bit one."), a kernel or image that does not fit in RAM below
    ///   4 GiB, an unreadable module.
    public static func build(kernel: [UInt8], path: String, commandLine: String, initrd: String?, ramBelow4G: UInt64,
                             readFile: (String) throws(LoaderError) -> [UInt8]) throws(LoaderError) -> MultibootFirmwareImage {
        let header = try MultibootHeader.find(in: kernel, path: path)
        if header.addresses == nil, kernel.count >= 20, UInt16(kernel[18]) | UInt16(kernel[19]) << 8 == ELFKernel.machineX86_64 {
            throw LoaderError(path, "Cannot load x86-64 image, give a 32bit one.")
        }
        let image = try MultibootLoader.parse(kernel, path: path)
        try image.validate(path: path, usableRAM: [0..<ramBelow4G])
        let load = image.start
        // The kernel from its lowest to its highest loaded byte, BSS and gaps zero.
        var data = [UInt8](repeating: 0, count: Int(image.end - load))
        for s in image.segments where s.fileSize > 0 {
            let at = Int(s.address - load)
            data.replaceSubrange(at..<(at + Int(s.fileSize)), with: kernel[Int(s.fileOffset)..<Int(s.fileOffset + s.fileSize)])
        }
        let modules = initrd.map { MultibootModule.parseList($0) } ?? []
        let infoOffset = pageAlign(UInt64(data.count))
        var lineBytes = path.utf8.count + 1 + commandLine.utf8.count + 1
        if let initrd { lineBytes += initrd.utf8.count + 1 }
        let linesOffset = infoOffset + UInt64(modules.count * moduleEntrySize)
        let loaderOffset = linesOffset + UInt64(lineBytes)
        var size = pageAlign(loaderOffset + UInt64("qemu".utf8.count + 1))
        data += [UInt8](repeating: 0, count: Int(size) - data.count)

        var lines = linesOffset
        func addLine(_ text: String) -> UInt32 {
            let bytes = Array(text.utf8) + [0]
            data.replaceSubrange(Int(lines)..<(Int(lines) + bytes.count), with: bytes)
            defer { lines += UInt64(bytes.count) }
            return UInt32(truncatingIfNeeded: load + lines)
        }
        func put(_ v: UInt32, at offset: Int, in buffer: inout [UInt8]) {
            for i in 0..<4 { buffer[offset + i] = UInt8(truncatingIfNeeded: v >> (8 * UInt32(i))) }
        }
        for (i, m) in modules.enumerated() {
            let line = addLine(m.commandLine)
            let bytes = try readFile(m.path)
            let start = size
            size = pageAlign(start + UInt64(bytes.count))
            guard load + size <= ramBelow4G else {
                throw LoaderError(m.path, "no room for the module: the Multiboot image would end at \(hex(load + size)), past RAM below 4 GiB")
            }
            data += bytes + [UInt8](repeating: 0, count: Int(size - start) - bytes.count)
            let entry = Int(infoOffset) + i * moduleEntrySize
            put(UInt32(truncatingIfNeeded: load + start), at: entry, in: &data)
            put(UInt32(truncatingIfNeeded: load + start + UInt64(bytes.count)), at: entry + 4, in: &data)
            put(line, at: entry + 8, in: &data)
        }
        var info = [UInt8](repeating: 0, count: infoSize)
        put(addLine("\(path) \(commandLine)"), at: 16, in: &info)                 // cmdline
        let name = Array("qemu".utf8) + [0]
        data.replaceSubrange(Int(loaderOffset)..<(Int(loaderOffset) + name.count), with: name)
        put(UInt32(truncatingIfNeeded: load + loaderOffset), at: 64, in: &info)  // boot_loader_name
        put(UInt32(truncatingIfNeeded: load + infoOffset), at: 24, in: &info)    // mods_addr
        put(UInt32(modules.count), at: 20, in: &info)                            // mods_count
        // MEMORY | BOOT_DEVICE | CMDLINE | MODULES | MMAP | BOOTLOADER.
        put(0x1 | 0x2 | 0x4 | 0x8 | 0x40 | 0x200, at: 0, in: &info)
        put(0x8000_ffff, at: 12, in: &info)                                        // boot_device
        put(mmapAddress, at: 48, in: &info)                                        // mmap_addr
        return MultibootFirmwareImage(entry: UInt32(truncatingIfNeeded: image.entry), loadAddress: UInt32(truncatingIfNeeded: load),
                                      data: data, info: info)
    }

    static func pageAlign(_ v: UInt64) -> UInt64 { (v + page - 1) & ~(page - 1) }
}
