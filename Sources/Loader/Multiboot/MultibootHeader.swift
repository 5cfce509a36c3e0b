import VMMSys
/// The Multiboot v1 header a kernel embeds in its first 8 KiB to tell the boot loader how to
/// load it (Multiboot Specification 0.6.96, section 3.1). QEMU: the header scan and the
/// `mh_*` fields of `load_multiboot()` (hw/i386/multiboot.c).
public struct MultibootHeader: Equatable, Sendable {
    /// The header's magic number.
    public static let magic: UInt32 = 0x1BAD_B002
    /// The header must lie completely within this many leading bytes of the file.
    public static let searchLimit = 8192

    /// Flag bit 0: modules must be loaded on 4 KiB boundaries.
    public static let pageAlignModules: UInt32 = 1 << 0
    /// Flag bit 1: the kernel needs `mem_lower`/`mem_upper` (and the memory map).
    public static let memoryInfo: UInt32 = 1 << 1
    /// Flag bit 2: the kernel wants a video mode table; we have no video, so it is not provided.
    public static let videoMode: UInt32 = 1 << 2
    /// Flag bit 16: the load address fields below are valid ("a.out kludge"); use them, not ELF.
    public static let aoutKludge: UInt32 = 1 << 16
    /// Required-feature bits (0–15) this loader understands; any other set bit must be refused.
    static let understoodRequiredFlags: UInt32 = pageAlignModules | memoryInfo | videoMode

    /// Address fields present when `aoutKludge` is set (all guest-physical).
    public struct AddressFields: Equatable, Sendable {
        /// Where the header itself is loaded; with its file offset it fixes where the text
        /// starts in the file. QEMU: `mh_header_addr`.
        public var headerAddress: UInt32
        /// Where the text segment is loaded. QEMU: `mh_load_addr`.
        public var loadAddress: UInt32
        /// End of the bytes loaded from the file; 0: up to the end of the file.
        /// QEMU: `mh_load_end_addr`.
        public var loadEndAddress: UInt32
        /// End of the BSS, zeroed after the loaded bytes; 0: no BSS. QEMU: `mh_bss_end_addr`.
        public var bssEndAddress: UInt32
        /// Where execution starts. QEMU: `mh_entry_addr`.
        public var entryAddress: UInt32
    }

    /// Byte offset of the header in the file.
    public var offset: Int
    /// The header's flags: required features in bits 0–15 (see the constants above),
    /// optional ones in 16–31.
    public var flags: UInt32
    /// The a.out kludge fields, when flag bit 16 is set.
    public var addresses: AddressFields?

    /// Searches the first 8 KiB of `file` on 4-byte boundaries for a header whose checksum is
    /// valid. `path` is used only in error messages. QEMU: the scan in `load_multiboot()`.
    ///
    /// - Throws: "not a Multiboot kernel" when no magic is found; "bad checksum" when only
    ///   headers with a wrong checksum are; unsupported required flags; a truncated header.
    public static func find(in file: [UInt8], path: String) throws(LoaderError) -> MultibootHeader {
        let reader = ByteReader(bytes: file)
        let limit = min(file.count, searchLimit)
        var badChecksum: (offset: Int, sum: UInt32)?
        var offset = 0
        while offset + 12 <= limit {
            defer { offset += 4 }
            guard reader.read(UInt32.self, at: UInt64(offset)) == magic,
                  let flags = reader.read(UInt32.self, at: UInt64(offset + 4)),
                  let checksum = reader.read(UInt32.self, at: UInt64(offset + 8)) else { continue }
            let sum = magic &+ flags &+ checksum
            guard sum == 0 else {
                if badChecksum == nil { badChecksum = (offset, sum) }
                continue
            }
            return try parse(reader, at: offset, flags: flags, path: path)
        }
        if let bad = badChecksum {
            throw LoaderError(path, "Multiboot header at offset \(hex(bad.offset)) has a bad checksum "
                + "(magic + flags + checksum = \(hex(bad.sum)), must be 0)")
        }
        throw LoaderError(path, "not a Multiboot kernel (no Multiboot header in the first 8 KiB)")
    }

    /// Whether `file` carries a valid Multiboot header (how a machine picks this loader).
    public static func isPresent(in file: [UInt8]) -> Bool {
        (try? find(in: file, path: "")) != nil
    }

    /// Reads the fields after a header whose checksum has been verified.
    private static func parse(_ reader: ByteReader, at offset: Int, flags: UInt32,
                              path: String) throws(LoaderError) -> MultibootHeader {
        let unknown = flags & 0xFFFF & ~understoodRequiredFlags
        guard unknown == 0 else {
            throw LoaderError(path, "Multiboot header requires features this loader does not support "
                + "(flags \(hex(unknown)))")
        }
        var header = MultibootHeader(offset: offset, flags: flags, addresses: nil)
        if flags & aoutKludge != 0 {
            let base = UInt64(offset)
            guard offset + 32 <= searchLimit,
                  let h = reader.read(UInt32.self, at: base + 12),
                  let l = reader.read(UInt32.self, at: base + 16),
                  let le = reader.read(UInt32.self, at: base + 20),
                  let b = reader.read(UInt32.self, at: base + 24),
                  let e = reader.read(UInt32.self, at: base + 28) else {
                throw LoaderError(path, "Multiboot header at offset \(hex(offset)) is truncated "
                    + "(flag bit 16 needs the address fields)")
            }
            header.addresses = AddressFields(headerAddress: h, loadAddress: l, loadEndAddress: le,
                                             bssEndAddress: b, entryAddress: e)
        }
        return header
    }
}
