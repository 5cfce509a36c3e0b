import Loader
import Memory

/// The kernel loaders on a hostile file: the Multiboot loader (header search, a.out kludge
/// fields, ELF32/ELF64 headers and program headers, modules) and the Linux boot-protocol
/// loader (setup header, `setup_sects`, `init_size`, `pref_address`, alignment, initrd
/// placement), chosen as the machine chooses them (`LinuxLoader.isLinuxKernel`).
///
/// Input: `u8` layout choice, the command line and up to two modules (one-byte-length
/// strings and byte strings), then the kernel file (the rest).
///
/// Checks: a refused kernel gets a one-line `LoaderError` naming the kernel or module and
/// leaves guest RAM untouched (the loaders validate everything before writing); an accepted
/// one places the kernel, the Multiboot information, the modules or the initrd inside usable
/// RAM, page-aligned where promised and not overlapping each other, and the Linux command
/// line lands NUL-terminated at its address.
func fuzzLoader(_ data: [UInt8]) throws(FuzzFailure) {
    try LoaderFixture.shared.with { f throws(FuzzFailure) in try f.run(data) }
}

final class LoaderFixture {
    static let shared = Fixture { LoaderFixture() }
    static let name = FuzzTarget.loader.rawValue
    static let ramSize: UInt64 = 0x140000
    static let kernelPath = "fuzz-kernel"

    let memory: GuestMemory
    let ram: RAMBlock
    /// Whether guest RAM may hold bytes from an earlier run (a refused load leaves it zero, as
    /// checked, so only an accepted one costs a reset).
    var dirty = false

    init() {
        let system = MemorySystem()
        let (root, space) = makeSpace("memory", size: UInt128(1) << 64, system: system)
        let region = makeRAM("ram", Self.ramSize)
        root.addSubregion(region, at: 0)
        ram = region.ramBlock!
        memory = space.guestMemory
    }

    func run(_ data: [UInt8]) throws(FuzzFailure) {
        if dirty { ram.fill(with: []) }
        dirty = true
        var input = FuzzInput(data)
        let layout = input.u8()
        let commandLine = input.shortString()
        var modules: [(args: String, data: [UInt8])] = []
        for i in 0..<Int(layout >> 6) % 3 { modules.append(("module\(i) " + input.shortString(), input.shortBytes())) }
        let kernel = input.rest()

        // The pc layout in miniature: low RAM below the EBDA, a hole, RAM from 1 MiB.
        let usable: [Range<UInt64>] = layout & 1 == 0 ? [0..<0x9fc00, 0x100000..<Self.ramSize] : [0..<Self.ramSize]
        let e820 = usable.map { E820Entry(base: $0.lowerBound, length: $0.upperBound - $0.lowerBound, kind: .ram) }

        if LinuxLoader.isLinuxKernel(kernel) {
            let c = LinuxBootConfiguration(kernelPath: Self.kernelPath, commandLine: commandLine,
                                           initrd: modules.first?.data, initrdPath: modules.isEmpty ? nil : "initrd",
                                           memoryMap: layout & 2 == 0 ? e820 : [], ramBelow4G: Self.ramSize)
            let info: LinuxBootInfo
            do { info = try LinuxLoader.load(kernel: kernel, configuration: c, into: memory) } catch {
                return try refused(error)
            }
            try checkLinux(info, commandLine: commandLine, usable: layout & 2 == 0 ? usable : [0..<Self.ramSize])
        } else {
            let c = MultibootConfiguration(kernelPath: Self.kernelPath, commandLine: commandLine,
                                           modules: modules.map { MultibootModule(commandLine: $0.args) },
                                           usableRAM: usable, ramBelow4G: Self.ramSize, memoryMap: layout & 2 == 0 ? e820 : [])
            let files = Dictionary(modules.map { (MultibootModule(commandLine: $0.args).path, $0.data) }, uniquingKeysWith: { a, _ in a })
            let info: MultibootBootInfo
            do {
                info = try MultibootLoader.load(kernel: kernel, configuration: c, into: memory,
                                                readFile: { path throws(LoaderError) in
                                                    guard let d = files[path] else { throw LoaderError(path, "no such module") }
                                                    return d
                                                })
            } catch {
                return try refused(error)
            }
            try checkMultiboot(info, usable: usable)
        }
    }

    private func refused(_ e: LoaderError) throws(FuzzFailure) {
        let text = e.description
        try require(!e.problem.isEmpty && !text.contains("\n"), Self.name, "error is not one line: \(text.debugDescription)")
        try require(ram.contents.allSatisfy { $0 == 0 }, Self.name, "a refused kernel (\(text)) wrote guest RAM")
        dirty = false
    }

    private func inside(_ r: Range<UInt64>, _ usable: [Range<UInt64>]) -> Bool {
        r.isEmpty || usable.contains { $0.lowerBound <= r.lowerBound && r.upperBound <= $0.upperBound }
    }

    private func checkMultiboot(_ info: MultibootBootInfo, usable: [Range<UInt64>]) throws(FuzzFailure) {
        try require(inside(info.kernelRange, usable), Self.name, "kernel placed at \(info.kernelRange) outside usable RAM")
        let infoAt = UInt64(info.infoAddress)
        try require(infoAt % 4096 == 0 && infoAt >= info.kernelRange.upperBound, Self.name,
                    "Multiboot information at \(hex(infoAt)) not page-aligned after the kernel \(info.kernelRange)")
        var previous = info.kernelRange
        for m in info.moduleRanges {
            try require(inside(m, usable) && m.lowerBound % 4096 == 0 && m.lowerBound >= previous.upperBound, Self.name,
                        "module at \(m) misplaced (usable \(usable), previous \(previous))")
            try require(m.upperBound <= info.endOfImage, Self.name, "module \(m) past the end of image \(hex(info.endOfImage))")
            previous = m
        }
    }

    private func checkLinux(_ info: LinuxBootInfo, commandLine: String, usable: [Range<UInt64>]) throws(FuzzFailure) {
        try require(inside(info.kernelRange, usable), Self.name, "kernel footprint \(info.kernelRange) outside RAM")
        if let r = info.initrdRange {
            try require(inside(r, usable) && r.lowerBound % 4096 == 0 && !r.overlaps(info.kernelRange), Self.name,
                        "initrd at \(r) misplaced (kernel \(info.kernelRange))")
        }
        _ = (info.cpuState64, info.cpuState32, info.identityMapEnd)
        let bytes = Array(commandLine.utf8) + [0]
        let got = try? memory.read(at: info.commandLineAddress, count: bytes.count)
        try require(got == bytes, Self.name, "command line at \(hex(info.commandLineAddress)) is not the NUL-terminated argument")
    }
}
