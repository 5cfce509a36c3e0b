import VMMSys

/// Finds firmware files (the BIOS, option ROMs) where QEMU looks for them: the name as given
/// first (a path, or a file in the current directory), then each `-L` directory in order, then
/// the system's QEMU data directories — Debian's configured firmware path, where the `seabios`
/// and `qemu-system-data` packages install bios-256k.bin and the option ROMs.
/// QEMU: qemu_find_file(QEMU_FILE_TYPE_BIOS, name) over data_dir[] (softmmu/datadir.c), filled
/// by -L (qemu_add_data_dir()) and then qemu_add_default_firmwarepath().
public enum FirmwareLocator {
    /// The data directories after `-L`: Debian's `--firmwarepath` for qemu-system-x86.
    public static let systemDirectories = ["/usr/share/qemu", "/usr/share/seabios", "/usr/lib/ipxe/qemu"]

    /// The directories searched, in order (what `-L help` prints). QEMU: qemu_list_data_dirs().
    public static func searchPath(dataDirectories: [String]) -> [String] {
        dataDirectories + systemDirectories
    }

    /// The path of `name`, or nil: the name itself when readable, else the first readable
    /// `DIR/name` along the search path. QEMU: qemu_find_file().
    public static func find(_ name: String, dataDirectories: [String]) -> String? {
        if HostEnvironment.isReadable(name) { return name }
        for dir in searchPath(dataDirectories: dataDirectories) {
            let candidate = dir + "/" + name
            if HostEnvironment.isReadable(candidate) { return candidate }
        }
        return nil
    }

    /// Where `name` was looked for, for an error message.
    public static func describeSearch(_ name: String, dataDirectories: [String]) -> String {
        ([name] + searchPath(dataDirectories: dataDirectories).map { $0 + "/" + name }).joined(separator: ", ")
    }
}

/// A BIOS image as the pc machine maps it: the whole file ending at 4 GiB, its last 128 KiB
/// (or all of it, if smaller) also at 1 MiB - 128 KiB. QEMU: x86_bios_rom_init().
public struct BIOSImage: Sendable, Equatable {
    /// QEMU's default for the pc machine. QEMU: pc_system_firmware_init() → "bios-256k.bin".
    public static let defaultName = "bios-256k.bin"
    /// Where the image was found.
    public let path: String
    /// The image's contents.
    public let bytes: [UInt8]

    /// Sizes refused: QEMU wants a non-empty multiple of 64 KiB; beyond 16 MiB the image would
    /// reach down into the IOAPIC/HPET range (QEMU sets no limit for -bios; deliberate).
    public static let maximumSize = 16 << 20

    /// The image's guest-physical address (the top of 4 GiB minus its size).
    public var address: UInt64 { (1 << 32) - UInt64(bytes.count) }
    /// How much of its end appears below 1 MiB ("isa-bios").
    public var isaSize: UInt64 { min(UInt64(bytes.count), 128 << 10) }

    /// Checks the size: a non-empty multiple of 64 KiB, at most `maximumSize`; the error names
    /// `path`. QEMU: x86_bios_rom_init() ("could not load PC BIOS").
    public init(path: String, bytes: [UInt8]) throws(LoaderError) {
        guard !bytes.isEmpty, bytes.count % 0x1_0000 == 0 else {
            throw LoaderError(path, "could not load PC BIOS: \(bytes.count) bytes is not a non-zero multiple of 64 KiB")
        }
        guard bytes.count <= Self.maximumSize else {
            throw LoaderError(path, "could not load PC BIOS: \(bytes.count) bytes is more than 16 MiB")
        }
        self.path = path
        self.bytes = bytes
    }

    /// Finds and reads `name` (QEMU's default when nil). The error names the file, every place
    /// it was looked for and, for the default, the package that provides it.
    /// QEMU: x86_bios_rom_init() ("qemu: could not load PC BIOS '%s'").
    public static func load(_ name: String?, dataDirectories: [String]) throws(LoaderError) -> BIOSImage {
        let wanted = name ?? defaultName
        guard let path = FirmwareLocator.find(wanted, dataDirectories: dataDirectories) else {
            throw notFound(wanted, dataDirectories: dataDirectories)
        }
        let bytes: [UInt8]
        do {
            bytes = try readWholeFile(path, maximumBytes: UInt64(maximumSize + 1))
        } catch {
            throw LoaderError(path, "could not load PC BIOS: \(HostEnvironment.message(forErrno: error.errno))")
        }
        return try BIOSImage(path: path, bytes: bytes)
    }

    /// The error for a BIOS `name` found nowhere: every place looked in and, for QEMU's default,
    /// the packages that install it.
    public static func notFound(_ name: String, dataDirectories: [String]) -> LoaderError {
        let hint = name == defaultName
            ? " (it comes with the seabios package: apt-get install seabios qemu-system-data; or give -bios FILE or -L DIR)"
            : ""
        return LoaderError(name, "could not load PC BIOS: not found; looked for "
            + FirmwareLocator.describeSearch(name, dataDirectories: dataDirectories) + hint)
    }
}
