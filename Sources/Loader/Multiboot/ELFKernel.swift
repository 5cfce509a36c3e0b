import VMMSys
/// Reads the loadable segments of an ELF32 or ELF64 kernel, the form a Multiboot kernel takes
/// when its header does not set flag bit 16. Segments are placed at their physical address
/// (`p_paddr`), as QEMU's Multiboot loader does.
enum ELFKernel {
    static let machine386: UInt16 = 3
    static let machineX86_64: UInt16 = 62
    static let ptLoad: UInt32 = 1

    /// The layout differences between the two ELF classes.
    private struct Layout {
        var headerSize: UInt64
        var programHeaderSize: UInt64
        var is64: Bool
    }

    /// Whether `file` starts with the ELF magic.
    static func hasMagic(_ file: [UInt8]) -> Bool {
        file.count >= 4 && file[0] == 0x7F && file[1] == 0x45 && file[2] == 0x4C && file[3] == 0x46
    }

    /// Parses `file`; `path` names it in errors.
    static func parse(_ file: [UInt8], path: String) throws(LoaderError) -> KernelImage {
        let r = ByteReader(bytes: file)
        guard hasMagic(file) else {
            throw LoaderError(path, "Multiboot header has no load addresses (flag bit 16 clear) "
                + "and the file is not ELF")
        }
        guard file.count >= 16 else { throw LoaderError(path, "truncated ELF header (file is \(file.count) bytes)") }
        let layout: Layout
        switch file[4] {
        case 1: layout = Layout(headerSize: 52, programHeaderSize: 32, is64: false)
        case 2: layout = Layout(headerSize: 64, programHeaderSize: 56, is64: true)
        default: throw LoaderError(path, "unknown ELF class \(file[4])")
        }
        guard file[5] == 1 else { throw LoaderError(path, "ELF file is not little-endian") }
        guard r.count >= layout.headerSize else {
            throw LoaderError(path, "truncated ELF header (file is \(file.count) bytes, "
                + "needs \(layout.headerSize))")
        }
        // The header is complete from here on, so its reads cannot fail.
        let machine = r.read(UInt16.self, at: 18)!
        guard machine == machine386 || machine == machineX86_64 else {
            throw LoaderError(path, "ELF machine \(machine) is not x86 (3) or x86-64 (62)")
        }
        let entry: UInt64, phoff: UInt64, phentsize: UInt64, phnum: UInt64
        if layout.is64 {
            entry = r.read(UInt64.self, at: 24)!
            phoff = r.read(UInt64.self, at: 32)!
            phentsize = UInt64(r.read(UInt16.self, at: 54)!)
            phnum = UInt64(r.read(UInt16.self, at: 56)!)
            guard entry <= UInt64(UInt32.max) else {
                throw LoaderError(path, "ELF64 entry point \(hex(entry)) lies above 4 GiB; "
                    + "Multiboot starts the kernel in 32-bit protected mode")
            }
        } else {
            entry = UInt64(r.read(UInt32.self, at: 24)!)
            phoff = UInt64(r.read(UInt32.self, at: 28)!)
            phentsize = UInt64(r.read(UInt16.self, at: 42)!)
            phnum = UInt64(r.read(UInt16.self, at: 44)!)
        }
        guard phnum > 0 else { throw LoaderError(path, "ELF file has no program headers") }
        guard phentsize >= layout.programHeaderSize else {
            throw LoaderError(path, "ELF program header size \(phentsize) is smaller than "
                + "\(layout.programHeaderSize)")
        }
        // phentsize and phnum are 16-bit, so the product cannot overflow.
        let tableSize = phentsize * phnum
        guard r.contains(offset: phoff, length: tableSize) else {
            let end = phoff.addingReportingOverflow(tableSize)
            throw LoaderError(path, "program header table [\(hex(phoff)), "
                + "\(end.overflow ? "past 2^64" : hex(end.partialValue))) lies outside the file "
                + "(size \(hex(file.count)))")
        }
        var segments: [LoadSegment] = []
        for index in 0..<phnum {
            let base = phoff + index * phentsize
            guard r.read(UInt32.self, at: base) == ptLoad else { continue }
            let s = programHeader(r, at: base, is64: layout.is64, label: "segment \(index)")
            try check(s, in: r, path: path)
            if s.memorySize > 0 { segments.append(s) }
        }
        guard !segments.isEmpty else { throw LoaderError(path, "ELF file has no loadable (PT_LOAD) segments") }
        return KernelImage(segments: segments, entry: entry)
    }

    /// Reads one program header that `parse` has verified lies inside the file.
    private static func programHeader(_ r: ByteReader, at base: UInt64, is64: Bool, label: String) -> LoadSegment {
        if is64 {
            return LoadSegment(label: label, address: r.read(UInt64.self, at: base + 24)!,
                               fileOffset: r.read(UInt64.self, at: base + 8)!,
                               fileSize: r.read(UInt64.self, at: base + 32)!,
                               memorySize: r.read(UInt64.self, at: base + 40)!)
        }
        return LoadSegment(label: label, address: UInt64(r.read(UInt32.self, at: base + 12)!),
                           fileOffset: UInt64(r.read(UInt32.self, at: base + 4)!),
                           fileSize: UInt64(r.read(UInt32.self, at: base + 16)!),
                           memorySize: UInt64(r.read(UInt32.self, at: base + 20)!))
    }

    /// Refuses a segment whose file bytes are not in the file or whose sizes are inconsistent.
    private static func check(_ s: LoadSegment, in r: ByteReader, path: String) throws(LoaderError) {
        guard r.contains(offset: s.fileOffset, length: s.fileSize) else {
            let end = s.fileOffset.addingReportingOverflow(s.fileSize)
            throw LoaderError(path, "\(s.label) file range [\(hex(s.fileOffset)), "
                + "\(end.overflow ? "past 2^64" : hex(end.partialValue))) lies outside the file "
                + "(size \(hex(r.count)))")
        }
        guard s.fileSize <= s.memorySize else {
            throw LoaderError(path, "\(s.label) has p_filesz \(hex(s.fileSize)) larger than "
                + "p_memsz \(hex(s.memorySize))")
        }
        guard s.address.addingReportingOverflow(s.memorySize).overflow == false else {
            throw LoaderError(path, "\(s.label) at \(hex(s.address)) with size \(hex(s.memorySize)) "
                + "wraps past the end of the address space")
        }
    }
}
