/// The script QEMU hands firmware in fw_cfg "etc/table-loader": fixed 128-byte commands that
/// tell it to allocate fw_cfg files in guest memory (ALLOCATE), patch pointers from one file
/// into another (ADD_POINTER: the little-endian value at an offset gets the pointee's address
/// added) and fix checksums (ADD_CHECKSUM: the byte at an offset is decreased by the sum of a
/// range). SeaBIOS and OVMF run it, so ACPI tables land wherever firmware has room. File names
/// are at most 55 bytes (fw_cfg's limit) and NUL-padded to 56.
/// QEMU: BiosLinkerLoaderEntry, bios_linker_loader_alloc(), bios_linker_loader_add_pointer(),
/// bios_linker_loader_add_checksum() (hw/acpi/bios-linker-loader.c); SeaBIOS:
/// romfile_loader_execute() (src/fw/romfile_loader.c).
public struct BIOSLinkerLoader: Sendable, Equatable {
    /// Command numbers. QEMU: BIOS_LINKER_LOADER_COMMAND_*.
    public enum Command: UInt32, Sendable { case allocate = 1, addPointer = 2, addChecksum = 3, writePointer = 4 }
    /// Where ALLOCATE puts a file: high memory (top of RAM below 4 GiB) or the F segment
    /// (0xf0000-0xfffff, where an RSDP must be). QEMU: BIOS_LINKER_LOADER_ALLOC_ZONE_*.
    public enum Zone: UInt8, Sendable { case high = 1, fseg = 2 }

    /// Bytes per command. QEMU: sizeof(BiosLinkerLoaderEntry).
    public static let entrySize = 128
    /// Bytes of a file-name field, NUL included. QEMU: BIOS_LINKER_LOADER_FILESZ (FW_CFG_MAX_FILE_PATH).
    public static let fileNameSize = 56

    /// The commands so far, 128 bytes each.
    public private(set) var bytes: [UInt8] = []

    /// An empty script. QEMU: bios_linker_loader_init().
    public init() {}

    /// ALLOCATE `file` aligned to `alignment` (a power of two) in `zone`.
    /// QEMU: bios_linker_loader_alloc().
    public mutating func allocate(_ file: String, alignment: UInt32, zone: Zone) {
        var e = Self.entry(.allocate)
        Self.put(name: file, into: &e, at: 4)
        Self.put(alignment, into: &e, at: 60)
        e[64] = zone.rawValue
        bytes += e
    }

    /// ADD_POINTER: the `size`-byte (1, 2, 4 or 8) little-endian value at `offset` in `destination`
    /// gets the address of `source` added. QEMU: bios_linker_loader_add_pointer().
    public mutating func addPointer(in destination: String, at offset: UInt32, size: UInt8, to source: String) {
        var e = Self.entry(.addPointer)
        Self.put(name: destination, into: &e, at: 4)
        Self.put(name: source, into: &e, at: 60)
        Self.put(offset, into: &e, at: 116)
        e[120] = size
        bytes += e
    }

    /// ADD_CHECKSUM: the byte at `offset` in `file` is decreased by the sum of `length` bytes
    /// from `start`, so the range sums to zero. QEMU: bios_linker_loader_add_checksum().
    public mutating func addChecksum(in file: String, at offset: UInt32, start: UInt32, length: UInt32) {
        var e = Self.entry(.addChecksum)
        Self.put(name: file, into: &e, at: 4)
        Self.put(offset, into: &e, at: 60)
        Self.put(start, into: &e, at: 64)
        Self.put(length, into: &e, at: 68)
        bytes += e
    }

    /// The script padded with zero bytes (commands firmware skips) to a multiple of
    /// `alignment`, as QEMU pads it to 4 KiB. QEMU: acpi_align_size(linker->cmd_blob, ACPI_BUILD_ALIGN_SIZE).
    public func padded(to alignment: Int) -> [UInt8] {
        guard alignment > 0, bytes.count % alignment != 0 else { return bytes }
        return bytes + [UInt8](repeating: 0, count: alignment - bytes.count % alignment)
    }

    private static func entry(_ command: Command) -> [UInt8] {
        var e = [UInt8](repeating: 0, count: entrySize)
        put(command.rawValue, into: &e, at: 0)
        return e
    }

    private static func put(_ v: UInt32, into e: inout [UInt8], at offset: Int) {
        for i in 0..<4 { e[offset + i] = UInt8(truncatingIfNeeded: v >> (8 * UInt32(i))) }
    }

    /// Names longer than 55 bytes are cut (fw_cfg refuses such files anyway).
    private static func put(name: String, into e: inout [UInt8], at offset: Int) {
        for (i, b) in name.utf8.prefix(fileNameSize - 1).enumerated() { e[offset + i] = b }
    }
}
