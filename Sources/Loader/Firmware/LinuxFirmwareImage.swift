import VMMSys

/// A Linux kernel (setup header "HdrS") as QEMU hands it to its "linuxboot_dma.bin" option ROM
/// through fw_cfg, for `-kernel` with firmware: the real-mode setup sectors (with the setup
/// header patched as a boot loader patches it), the protected-mode kernel, the command line and
/// the initrd, each with the address the ROM copies it to. The ROM then enters the setup code in
/// real mode at (setup segment + 0x20):0, as a boot loader does — so, unlike the direct path,
/// the kernel's own 16-bit setup runs. QEMU: x86_load_linux() (hw/i386/x86.c),
/// pc-bios/optionrom/linuxboot_dma.c.
///
/// Addresses by boot protocol, as QEMU chooses them: a bzImage of protocol 2.02 or later ("high and
/// recent") has its setup at 0x10000, the command line at 0x20000 and the kernel at 1 MiB; an
/// older high kernel its setup at 0x90000 and the command line just below 0x9a000; a zImage
/// (LOADED_HIGH clear) also its kernel at 0x10000.
public struct LinuxFirmwareImage: Sendable, Equatable {
    /// The option ROM's file (the DMA flavour: this machine's fw_cfg has the DMA interface).
    public static let romName = "linuxboot_dma.bin"

    /// FW_CFG_SETUP_ADDR/_SIZE/_DATA: the setup sectors with the patched header.
    public let setupAddress: UInt32
    /// The setup sectors (boot sector included), header patched.
    public let setup: [UInt8]
    /// FW_CFG_KERNEL_ADDR/_SIZE/_DATA: the protected-mode kernel (the file after the setup).
    public let kernelAddress: UInt32
    /// The protected-mode kernel.
    public let kernel: [UInt8]
    /// FW_CFG_CMDLINE_ADDR/_SIZE/_DATA: the command line with its NUL.
    public let commandLineAddress: UInt32
    /// The command line, NUL-terminated.
    public let commandLine: [UInt8]
    /// FW_CFG_INITRD_ADDR/_SIZE/_DATA, when `-initrd` was given.
    public let initrdAddress: UInt32?
    /// The initrd's contents, when `-initrd` was given.
    public let initrd: [UInt8]?

    /// The memory QEMU's pc machine keeps free for ACPI tables below the top of low RAM, which
    /// caps the initrd's highest address. QEMU: pcmc->acpi_data_size (0x20000 + 0x8000).
    public static let acpiDataSize: UInt64 = 0x2_8000

    /// Builds the image from the kernel file's bytes.
    /// - Throws: `LoaderError` naming the kernel or initrd, in QEMU's words where QEMU has
    ///   them: "invalid kernel header" (setup larger than the file), "invalid 'vga=' kernel
    ///   parameter", "linux kernel too old to load a ram disk", "initrd is too large"; and a
    ///   command line that does not fit below 640 KiB (QEMU lets the ROM overwrite what follows).
    public static func build(kernel file: [UInt8], path: String, commandLine: String, initrd: [UInt8]?, initrdPath: String?,
                             ramBelow4G: UInt64) throws(LoaderError) -> LinuxFirmwareImage {
        var header = Array(file.prefix(8192))
        header += [UInt8](repeating: 0, count: 8192 - header.count)
        func u16(_ at: Int) -> UInt32 { UInt32(header[at]) | UInt32(header[at + 1]) << 8 }
        func u32(_ at: Int) -> UInt32 { u16(at) | u16(at + 2) << 16 }
        func put16(_ v: UInt32, _ at: Int) { for i in 0..<2 { header[at + i] = UInt8(truncatingIfNeeded: v >> (8 * UInt32(i))) } }
        func put32(_ v: UInt32, _ at: Int) { for i in 0..<4 { header[at + i] = UInt8(truncatingIfNeeded: v >> (8 * UInt32(i))) } }

        let version: UInt32 = u32(0x202) == 0x5372_6448 ? u16(0x206) : 0
        let line = Array(commandLine.utf8)
        let lineSize = UInt64(line.count + 16) & ~15
        let setupAddress: UInt32, kernelAddress: UInt32, commandLineAddress: UInt32
        if version < 0x200 || header[0x211] & 0x01 == 0 {
            (setupAddress, kernelAddress) = (0x9_0000, 0x1_0000)
        } else if version < 0x202 {
            (setupAddress, kernelAddress) = (0x9_0000, 0x10_0000)
        } else {
            (setupAddress, kernelAddress) = (0x1_0000, 0x10_0000)
        }
        if setupAddress == 0x9_0000 {
            guard lineSize <= 0x9a000 - 0x9_0000 - 0x200 else {
                throw LoaderError(path, "kernel command line of \(line.count) bytes does not fit below 0x9a000 (boot protocol \(hex(version)))")
            }
            commandLineAddress = 0x9a000 - UInt32(lineSize)
        } else {
            guard UInt64(line.count) < 0xa_0000 - 0x2_0000 else {
                throw LoaderError(path, "kernel command line of \(line.count) bytes does not fit below 640 KiB")
            }
            commandLineAddress = 0x2_0000
        }

        // The highest address the initrd may end at.
        var initrdMax: UInt64
        if version >= 0x20c && u16(0x236) & 0x02 != 0 {          // XLF_CAN_BE_LOADED_ABOVE_4G
            initrdMax = UInt64(UInt32.max)
        } else if version >= 0x203 {
            initrdMax = UInt64(u32(0x22c))
        } else {
            initrdMax = 0x37ff_ffff
        }
        let reserved = ramBelow4G > acpiDataSize ? ramBelow4G - acpiDataSize : 0
        if initrdMax >= reserved { initrdMax = reserved &- 1 }

        if version >= 0x202 {
            put32(commandLineAddress, 0x228)
        } else {
            put16(0xa33f, 0x20)
            put16(commandLineAddress - setupAddress, 0x22)
        }
        if let mode = try videoMode(commandLine, path: path) { put16(mode, 0x1fa) }
        if version >= 0x200 { header[0x210] = 0xb0 }             // loader type: QEMU's "B", revision 0
        if version >= 0x201 {
            header[0x211] |= 0x80                                  // CAN_USE_HEAP
            put16(commandLineAddress - setupAddress - 0x200, 0x224)
        }

        var initrdAddress: UInt32?
        if let initrd {
            let subject = initrdPath ?? path
            guard version >= 0x200 else { throw LoaderError(subject, "linux kernel too old to load a ram disk") }
            guard UInt64(initrd.count) < initrdMax else {
                throw LoaderError(subject, "initrd is too large, cannot support.(max: \(initrdMax), need \(initrd.count))")
            }
            let address = UInt32(truncatingIfNeeded: (initrdMax - UInt64(initrd.count)) & ~4095)
            initrdAddress = address
            put32(address, 0x218)
            put32(UInt32(truncatingIfNeeded: initrd.count), 0x21c)
        }

        let sectors = header[0x1f1] == 0 ? 4 : Int(header[0x1f1])
        let setupSize = (sectors + 1) * 512
        guard setupSize <= file.count else { throw LoaderError(path, "invalid kernel header") }
        var setup = Array(file[0..<setupSize])
        let patched = min(header.count, setupSize)
        setup.replaceSubrange(0..<patched, with: header[0..<patched])
        return LinuxFirmwareImage(setupAddress: setupAddress, setup: setup, kernelAddress: kernelAddress,
                                  kernel: Array(file[setupSize...]), commandLineAddress: commandLineAddress,
                                  commandLine: line + [0], initrdAddress: initrdAddress, initrd: initrd)
    }

    /// The `vga=` parameter of the command line as the setup header's vid_mode: "normal"
    /// 0xffff, "ext" 0xfffe, "ask" 0xfffd, or a number (decimal, 0x hex or 0 octal) ending at a
    /// space or the end. QEMU: x86_load_linux() ("qemu: invalid 'vga=' kernel parameter.").
    static func videoMode(_ commandLine: String, path: String) throws(LoaderError) -> UInt32? {
        guard let found = commandLine.firstRange(of: "vga=") else { return nil }
        let value = commandLine[found.upperBound...]
        if value.hasPrefix("normal") { return 0xffff }
        if value.hasPrefix("ext") { return 0xfffe }
        if value.hasPrefix("ask") { return 0xfffd }
        let word = value.prefix { $0 != " " }
        var digits = Substring(word), radix = 10
        if digits.hasPrefix("0x") || digits.hasPrefix("0X") {
            digits = digits.dropFirst(2); radix = 16
        } else if digits.count > 1 && digits.hasPrefix("0") {
            digits = digits.dropFirst(); radix = 8
        }
        guard !digits.isEmpty, let mode = UInt32(digits, radix: radix) else {
            throw LoaderError(path, "invalid 'vga=' kernel parameter.")
        }
        return mode
    }
}
