import VMMSys
import Memory

/// Loads a Multiboot v1 kernel into guest RAM, as QEMU's `-kernel` does for Multiboot images.
///
/// Guest layout, everything page aligned and checked against `usableRAM`:
///
///     kernel segments            (where the kernel asks: ELF p_paddr or a.out load_addr)
///     information blob           (first page after the kernel's highest loaded byte;
///                                 see `MultibootInformation` for its contents)
///     module 0, module 1, ...    (each on its own page boundary, after the blob)
///
/// This is QEMU's order (kernel, boot info, modules). Modules are always page aligned, which
/// also satisfies header flag bit 0. Guest RAM is written only through `GuestMemory`.
///
/// QEMU: `load_multiboot()` (hw/i386/multiboot.c), which hands the image to its
/// `multiboot.bin` option ROM through fw_cfg instead of writing guest RAM.
public enum MultibootLoader {
    static let pageSize: UInt64 = 4096

    /// Reads the kernel from `configuration.kernelPath` and loads it; see
    /// `load(kernel:configuration:into:readFile:)`.
    public static func load(configuration: MultibootConfiguration,
                            into memory: GuestMemory) throws(LoaderError) -> MultibootBootInfo {
        let kernel = try readFile(configuration.kernelPath, what: "kernel")
        return try load(kernel: kernel, configuration: configuration, into: memory)
    }

    /// Loads `kernel` (the file's bytes), its modules and the Multiboot information into
    /// `memory`. Module files are read with `readFile` (by default from the host file system).
    ///
    /// Everything is validated before the first guest byte is written: a refused kernel
    /// leaves guest RAM untouched (a module that cannot be read is reported before as well).
    ///
    /// - Throws: `LoaderError` naming the kernel or module file and the problem.
    public static func load(kernel: [UInt8], configuration c: MultibootConfiguration,
                            into memory: GuestMemory,
                            readFile: (String) throws(LoaderError) -> [UInt8] = { path throws(LoaderError) in
                                try MultibootLoader.readFile(path, what: "module")
                            }) throws(LoaderError) -> MultibootBootInfo {
        let path = c.kernelPath
        let image = try parse(kernel, path: path)
        try image.validate(path: path, usableRAM: c.usableRAM)

        let moduleData = try c.modules.map { (m) throws(LoaderError) in try readFile(m.path) }
        var info = MultibootInformation(commandLine: "\(path) \(c.commandLine)",
                                        bootLoaderName: c.bootLoaderName, ramBelow4G: c.ramBelow4G,
                                        memoryMap: c.memoryMap, modules: [])
        let infoBase = pageAlign(image.end)
        var cursor = infoBase + UInt64(info.size)
        for (m, data) in zip(c.modules, moduleData) {
            let start = pageAlign(cursor)
            cursor = start + UInt64(data.count)
            info.modules.append(.init(start: start, end: cursor, string: m.commandLine))
        }
        let infoEnd = infoBase + UInt64(info.size)
        try checkPlacement(infoBase, infoEnd, subject: path, what: "Multiboot information", ram: c.usableRAM)
        for (m, placed) in zip(c.modules, info.modules) {
            try checkPlacement(placed.start, placed.end, subject: m.path, what: "module", ram: c.usableRAM)
        }

        for s in image.segments {
            let bytes = kernel[Int(s.fileOffset)..<Int(s.fileOffset + s.fileSize)]
            try memory.write(bytes, at: s.address, for: path, s.label)
            try memory.zero(at: s.address + s.fileSize, count: s.memorySize - s.fileSize, for: path, s.label)
        }
        try memory.write(info.encode(at: infoBase), at: infoBase, for: path, "Multiboot information")
        for (m, (placed, data)) in zip(c.modules, zip(info.modules, moduleData)) {
            try memory.write(data, at: placed.start, for: m.path, "module")
        }
        return MultibootBootInfo(entryPoint: UInt32(truncatingIfNeeded: image.entry),
                                 infoAddress: UInt32(infoBase),
                                 kernelRange: image.start..<image.end,
                                 moduleRanges: info.modules.map { $0.start..<$0.end },
                                 endOfImage: max(cursor, infoEnd))
    }

    /// Finds the Multiboot header and turns the file into segments by its rules.
    static func parse(_ kernel: [UInt8], path: String) throws(LoaderError) -> KernelImage {
        let header = try MultibootHeader.find(in: kernel, path: path)
        if let fields = header.addresses {
            return try AOutKludgeKernel.parse(kernel, header: header, fields: fields, path: path)
        }
        return try ELFKernel.parse(kernel, path: path)
    }

    /// Refuses a placement that is above 4 GiB (the information's pointers are 32-bit) or
    /// outside usable RAM.
    private static func checkPlacement(_ start: UInt64, _ end: UInt64, subject: String, what: String,
                                       ram: [Range<UInt64>]) throws(LoaderError) {
        guard end <= 1 << 32, isUsable(start, end, in: ram) else {
            throw LoaderError(subject, "no room for the \(what): \(hexRange(start, end)) "
                + "lies outside guest RAM below 4 GiB")
        }
    }

    static func pageAlign(_ address: UInt64) -> UInt64 {
        (address + pageSize - 1) & ~(pageSize - 1)
    }

    /// Largest kernel, module or initrd file accepted: everything is placed below 4 GiB.
    public static let maximumFileSize: UInt64 = 1 << 32

    /// Reads a host file; errors name the file and say what it was meant to be.
    ///
    /// Only regular files up to `maximumFileSize` are read: a device or pipe (`/dev/zero`,
    /// `/dev/stdin`) would otherwise be read until memory runs out. QEMU refuses those too
    /// (`get_image_size()` cannot seek them: "could not load kernel").
    public static func readFile(_ path: String, what: String) throws(LoaderError) -> [UInt8] {
        if let status = HostEnvironment.fileStatus(path) {
            guard status.isRegularFile else {
                throw LoaderError(path, "cannot read \(what) file: not a regular file")
            }
            guard status.size <= maximumFileSize else {
                throw LoaderError(path, "cannot read \(what) file: \(status.size) bytes is more than fits below 4 GiB")
            }
        }
        do {
            return try readWholeFile(path, maximumBytes: maximumFileSize)
        } catch {
            throw LoaderError(path, "cannot read \(what) file: \(HostEnvironment.message(forErrno: error.errno))")
        }
    }
}
