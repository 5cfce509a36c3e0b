import Foundation
import Memory

/// Guest memory with `size` bytes of RAM at 0, built as the rest of the project does.
func makeGuestMemory(size: UInt64 = 64 << 20) throws -> GuestMemory {
    let system = MemorySystem()
    let root = MemoryRegion.container(name: "root", size: UInt128(1) << 64)
    let ram = try MemoryRegion.ram(name: "ram", size: size)
    root.addSubregion(ram, at: 0)
    return AddressSpace(root: root, name: "memory", system: system).guestMemory
}

/// Little-endian encoding for building test files, independent of the module's writer.
func le<T: FixedWidthInteger>(_ v: T) -> [UInt8] {
    (0..<MemoryLayout<T>.size).map { UInt8(truncatingIfNeeded: v >> (8 * $0)) }
}

/// Overwrites bytes of `file` at `offset` with `bytes`, growing it with zeros if needed.
func put(_ bytes: [UInt8], at offset: Int, in file: inout [UInt8]) {
    if file.count < offset + bytes.count { file += [UInt8](repeating: 0, count: offset + bytes.count - file.count) }
    file.replaceSubrange(offset..<(offset + bytes.count), with: bytes)
}

/// A Multiboot header: magic, flags, checksum (optionally corrupted), then `extra` fields.
func multibootHeader(flags: UInt32, checksumDelta: UInt32 = 0, extra: [UInt32] = []) -> [UInt8] {
    let magic: UInt32 = 0x1BAD_B002
    let checksum = (0 &- (magic &+ flags)) &+ checksumDelta
    return ([magic, flags, checksum] + extra).flatMap(le)
}

/// A program header to synthesize: `data` at file offset `offset`, loaded at `paddr`.
struct TestSegment {
    var paddr: UInt64
    var data: [UInt8]
    var memsz: UInt64
    var offset: Int
    var vaddr: UInt64? = nil
}

/// A deterministic, recognizable byte pattern.
func pattern(_ count: Int, seed: UInt8) -> [UInt8] {
    (0..<count).map { UInt8(truncatingIfNeeded: $0 &* 7) &+ seed }
}

/// Synthesizes an ELF32 or ELF64 executable: header, program header table right after it,
/// a Multiboot header at 0x200, and each segment's data at its file offset.
func makeELF(is64: Bool, entry: UInt64, segments: [TestSegment], machine: UInt16? = nil,
             multiboot: [UInt8] = multibootHeader(flags: 0x3)) -> [UInt8] {
    let ehsize = is64 ? 64 : 52
    let phentsize = is64 ? 56 : 32
    var f: [UInt8] = [0x7F, 0x45, 0x4C, 0x46, is64 ? 2 : 1, 1, 1, 0] + [UInt8](repeating: 0, count: 8)
    f += le(UInt16(2))  // ET_EXEC
    f += le(machine ?? (is64 ? 62 : 3))
    f += le(UInt32(1))
    if is64 {
        f += le(entry) + le(UInt64(ehsize)) + le(UInt64(0))
    } else {
        f += le(UInt32(entry)) + le(UInt32(ehsize)) + le(UInt32(0))
    }
    f += le(UInt32(0)) + le(UInt16(ehsize)) + le(UInt16(phentsize)) + le(UInt16(segments.count))
    f += le(UInt16(0)) + le(UInt16(0)) + le(UInt16(0))
    precondition(f.count == ehsize)
    for s in segments {
        let vaddr = s.vaddr ?? s.paddr
        if is64 {
            f += le(UInt32(1)) + le(UInt32(7)) + le(UInt64(s.offset)) + le(vaddr) + le(s.paddr)
            f += le(UInt64(s.data.count)) + le(s.memsz) + le(UInt64(0x1000))
        } else {
            f += le(UInt32(1)) + le(UInt32(s.offset)) + le(UInt32(vaddr)) + le(UInt32(s.paddr))
            f += le(UInt32(s.data.count)) + le(UInt32(s.memsz)) + le(UInt32(7)) + le(UInt32(0x1000))
        }
    }
    put(multiboot, at: 0x200, in: &f)
    for s in segments { put(s.data, at: s.offset, in: &f) }
    return f
}

/// A NUL-terminated string read back from the guest.
func readCString(_ memory: GuestMemory, at address: UInt64) throws -> String {
    var bytes: [UInt8] = []
    var a = address
    while true {
        let b = try memory.load(UInt8.self, at: a)
        if b == 0 { break }
        bytes.append(b)
        a += 1
    }
    return String(decoding: bytes, as: UTF8.self)
}

/// A file in a fresh temporary directory, removed by the caller with `removeTemporary`.
func writeTemporaryFile(named name: String, contents: [UInt8]) throws -> String {
    let dir = FileManager.default.temporaryDirectory.appendingPathComponent("loader-tests-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
    let url = dir.appendingPathComponent(name)
    try Data(contents).write(to: url)
    return url.path
}

func removeTemporary(_ path: String) {
    try? FileManager.default.removeItem(atPath: (path as NSString).deletingLastPathComponent)
}
