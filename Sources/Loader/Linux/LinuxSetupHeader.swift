import VMMSys
/// The fields of a bzImage's real-mode setup header (Linux `Documentation/arch/x86/boot.rst`,
/// "The Real-Mode Kernel Header") that the loader reads. Offsets are from the start of the
/// file, which are also their offsets in `boot_params`.
struct LinuxSetupHeader {
    enum Offset {
        static let setupSects: UInt64 = 0x1F1
        static let vidMode: UInt64 = 0x1FA
        static let bootFlag: UInt64 = 0x1FE
        static let jump: UInt64 = 0x200
        static let magic: UInt64 = 0x202
        static let version: UInt64 = 0x206
        static let typeOfLoader: UInt64 = 0x210
        static let loadFlags: UInt64 = 0x211
        static let code32Start: UInt64 = 0x214
        static let ramdiskImage: UInt64 = 0x218
        static let ramdiskSize: UInt64 = 0x21C
        static let heapEndPtr: UInt64 = 0x224
        static let extLoaderVer: UInt64 = 0x226
        static let extLoaderType: UInt64 = 0x227
        static let cmdLinePtr: UInt64 = 0x228
        static let initrdAddrMax: UInt64 = 0x22C
        static let kernelAlignment: UInt64 = 0x230
        static let relocatableKernel: UInt64 = 0x234
        static let xloadflags: UInt64 = 0x236
        static let cmdlineSize: UInt64 = 0x238
        static let prefAddress: UInt64 = 0x258
        static let initSize: UInt64 = 0x260
    }

    static let magic: UInt32 = 0x5372_6448  // "HdrS"
    static let bootFlag: UInt16 = 0xAA55
    static let minimumVersion: UInt16 = 0x0206
    /// `boot_params` reserves `[0x1F1, 0x290)` for the header; a longer one would overwrite
    /// the fields after it (EDD signatures, the E820 table).
    static let headerAreaEnd: UInt64 = 0x290

    /// `loadflags` bits.
    static let loadedHigh: UInt8 = 0x01
    static let canUseHeap: UInt8 = 0x80
    /// `xloadflags` bit: the kernel has a 64-bit entry at load address + 0x200.
    static let xlfKernel64: UInt16 = 0x01

    var version: UInt16
    /// Number of 512-byte setup sectors after the boot sector (0 already turned into 4).
    var setupSects: UInt64
    /// One past the header's last byte: 0x202 plus the short jump's displacement at 0x201.
    var headerEnd: UInt64
    var loadFlags: UInt8
    var code32Start: UInt32
    var initrdAddrMax: UInt32
    var kernelAlignment: UInt32
    var relocatable: Bool
    var xloadflags: UInt16
    var cmdlineSize: UInt32
    var prefAddress: UInt64?
    var initSize: UInt32?

    /// Offset of the protected-mode kernel in the file.
    var kernelOffset: UInt64 { (setupSects + 1) * 512 }
    var has64BitEntry: Bool { version >= 0x020C && xloadflags & Self.xlfKernel64 != 0 }

    static func isPresent(in reader: ByteReader) -> Bool {
        reader.read(UInt32.self, at: Offset.magic) == magic
            && reader.read(UInt16.self, at: Offset.bootFlag) == bootFlag
    }

    /// Reads and checks the header; every problem becomes a `LoaderError` about `path`.
    static func parse(_ reader: ByteReader, path: String) throws(LoaderError) -> LinuxSetupHeader {
        guard isPresent(in: reader) else {
            throw LoaderError(path, "not a Linux kernel (no \"HdrS\" setup header at 0x202 "
                + "with boot flag 0xaa55 at 0x1fe)")
        }
        let version = reader.read(UInt16.self, at: Offset.version) ?? 0
        guard version >= minimumVersion else {
            throw LoaderError(path, "Linux boot protocol \(versionString(version)) is too old (need 2.06)")
        }
        let jumpLength = UInt64(reader.read(UInt8.self, at: Offset.jump + 1) ?? 0)
        let headerEnd = Offset.magic + jumpLength
        // 2.06 defines fields up to and including cmdline_size.
        guard headerEnd >= Offset.cmdlineSize + 4 else {
            throw LoaderError(path, "setup header ends at \(hex(headerEnd)), before the fields "
                + "boot protocol \(versionString(version)) defines (up to 0x23c)")
        }
        guard headerEnd <= headerAreaEnd else {
            throw LoaderError(path, "setup header claims to end at \(hex(headerEnd)), past the "
                + "header area of boot_params (\(hex(headerAreaEnd)))")
        }
        guard reader.contains(offset: 0, length: headerEnd) else {
            throw LoaderError(path, "file is truncated: \(reader.count) bytes, but the setup header "
                + "ends at \(hex(headerEnd))")
        }
        func field<T: FixedWidthInteger>(_ type: T.Type, _ offset: UInt64) -> T {
            // Inside [0, headerEnd), checked above; a field past the header reads as 0.
            offset + UInt64(MemoryLayout<T>.size) <= headerEnd ? reader.read(type, at: offset) ?? 0 : 0
        }
        let sects = UInt64(field(UInt8.self, Offset.setupSects))
        let newer = version >= 0x020A
        return LinuxSetupHeader(
            version: version,
            setupSects: sects == 0 ? 4 : sects,
            headerEnd: headerEnd,
            loadFlags: field(UInt8.self, Offset.loadFlags),
            code32Start: field(UInt32.self, Offset.code32Start),
            initrdAddrMax: field(UInt32.self, Offset.initrdAddrMax),
            kernelAlignment: field(UInt32.self, Offset.kernelAlignment),
            relocatable: field(UInt8.self, Offset.relocatableKernel) != 0,
            xloadflags: version >= 0x020C ? field(UInt16.self, Offset.xloadflags) : 0,
            cmdlineSize: field(UInt32.self, Offset.cmdlineSize),
            prefAddress: newer && headerEnd >= Offset.prefAddress + 8 ? field(UInt64.self, Offset.prefAddress) : nil,
            initSize: newer && headerEnd >= Offset.initSize + 4 ? field(UInt32.self, Offset.initSize) : nil)
    }

    static func versionString(_ version: UInt16) -> String {
        let minor = version & 0xFF
        return "\(version >> 8).\(minor < 10 ? "0" : "")\(minor)"
    }
}
