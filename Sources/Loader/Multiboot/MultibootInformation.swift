/// Encodes the Multiboot information structure (specification section 3.3) together with
/// everything it points to, as one blob placed at a single guest address:
///
///     +0    multiboot_info (88 bytes)
///     +88   module descriptors, 16 bytes each (mod_start, mod_end, string, reserved)
///     ...   memory map entries, 24 bytes each (size = 20, base_addr, length, type)
///     ...   NUL-terminated strings: kernel command line, module strings, boot loader name
///
/// QEMU builds the same pieces (multiboot.c), though it spreads them over a boot-info blob
/// after the kernel and an option ROM; we need no ROM, so the kernel finds them directly.
struct MultibootInformation {
    // Flag bits of multiboot_info.flags, the ones QEMU sets.
    static let flagMemory: UInt32 = 1 << 0
    static let flagBootDevice: UInt32 = 1 << 1
    static let flagCommandLine: UInt32 = 1 << 2
    static let flagModules: UInt32 = 1 << 3
    static let flagMemoryMap: UInt32 = 1 << 6
    static let flagBootLoaderName: UInt32 = 1 << 9

    // Field offsets in multiboot_info.
    static let offsetFlags = 0
    static let offsetMemLower = 4
    static let offsetMemUpper = 8
    static let offsetBootDevice = 12
    static let offsetCommandLine = 16
    static let offsetModsCount = 20
    static let offsetModsAddress = 24
    static let offsetMmapLength = 44
    static let offsetMmapAddress = 48
    static let offsetBootLoaderName = 64
    static let infoSize = 88
    static let moduleSize = 16
    static let mmapEntrySize = 24

    /// "No BIOS boot drive" — QEMU passes this too.
    static let bootDevice: UInt32 = 0x8000_FFFF
    /// `mem_lower` in KiB: the usable memory map entry at 0 (639 with the EBDA reserved, as
    /// QEMU's multiboot option ROM reports it from the BIOS), 640 without a map.
    var memLower: UInt32 {
        if let e = memoryMap.first(where: { $0.base == 0 && $0.kind == .ram }) {
            return UInt32(truncatingIfNeeded: min(e.length, 0xa_0000) / 1024)
        }
        return 640
    }

    /// A module as placed in guest RAM.
    struct PlacedModule {
        var start: UInt64
        var end: UInt64
        var string: String
    }

    var commandLine: String
    var bootLoaderName: String
    var ramBelow4G: UInt64
    var memoryMap: [E820Entry]
    var modules: [PlacedModule]

    /// `mem_upper` in KiB: the usable memory map entry starting at 1 MiB (what QEMU's option
    /// ROM reports from the firmware's map); without a map, `below_4g_mem_size / 1024 - 1024`.
    var memUpper: UInt32 {
        if let e = memoryMap.first(where: { $0.base == 0x10_0000 && $0.kind == .ram }) {
            return UInt32(truncatingIfNeeded: e.length / 1024)
        }
        let kib = ramBelow4G / 1024
        return kib > 1024 ? UInt32(truncatingIfNeeded: kib - 1024) : 0
    }

    /// The blob's size; it does not depend on where anything is placed.
    var size: Int { encode(at: 0).count }

    /// The blob as it must appear at guest-physical `base` (every pointer inside is absolute).
    /// `base` and all module addresses must be below 4 GiB; the loader checks.
    func encode(at base: UInt64) -> [UInt8] {
        let modsOffset = Self.infoSize
        let mmapOffset = modsOffset + Self.moduleSize * modules.count
        let stringsOffset = mmapOffset + Self.mmapEntrySize * memoryMap.count

        var strings = ByteWriter()
        func addString(_ s: String) -> UInt32 {
            let address = UInt32(truncatingIfNeeded: base + UInt64(stringsOffset + strings.count))
            strings.append(cString: s)
            return address
        }
        let commandLineAddress = addString(commandLine)

        var w = ByteWriter()
        var flags = Self.flagMemory | Self.flagBootDevice | Self.flagCommandLine | Self.flagModules
            | Self.flagBootLoaderName
        if !memoryMap.isEmpty { flags |= Self.flagMemoryMap }
        w.append(flags)
        w.append(memLower)
        w.append(memUpper)
        w.append(Self.bootDevice)
        w.append(commandLineAddress)
        w.append(UInt32(modules.count))
        w.append(UInt32(truncatingIfNeeded: base + UInt64(modsOffset)))
        w.appendZeros(16)  // syms: neither a.out nor ELF section headers are passed
        w.append(UInt32(Self.mmapEntrySize * memoryMap.count))
        w.append(UInt32(truncatingIfNeeded: base + UInt64(mmapOffset)))
        w.append(UInt32(0))  // drives_length
        w.append(UInt32(0))  // drives_addr
        w.append(UInt32(0))  // config_table
        let nameFieldOffset = w.count
        w.append(UInt32(0))  // boot_loader_name, set once the module strings are placed
        w.appendZeros(Self.infoSize - w.count)  // apm_table, vbe_*: not provided

        for m in modules {
            w.append(UInt32(truncatingIfNeeded: m.start))
            w.append(UInt32(truncatingIfNeeded: m.end))
            w.append(addString(m.string))
            w.append(UInt32(0))
        }
        for e in memoryMap {
            w.append(UInt32(Self.mmapEntrySize - 4))  // size excludes the size field itself
            w.append(e.base)
            w.append(e.length)
            w.append(e.kind.rawValue)
        }
        w.set(addString(bootLoaderName), at: nameFieldOffset)
        assert(w.count == stringsOffset)
        w.append(bytes: strings.bytes)
        return w.bytes
    }
}
