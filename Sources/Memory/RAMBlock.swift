#if canImport(Glibc)
import Glibc
#endif
import VMMSys

// Unsafe code in this file: the four accessors below touch the mapping through its base
// pointer, each only after `contains` has checked the whole range against `size`, which never
// exceeds the mapping's length.

/// Host memory backing a RAM or ROM region: an anonymous page-aligned mapping the VMM owns.
///
/// The only way in is through bounds-checked copies; the host address is exposed solely as an
/// integer for the accelerator to hand to the kernel (a KVM memory slot). QEMU: `RAMBlock`.
public final class RAMBlock: Sendable {
    private let mapping: MappedMemory
    /// Usable size in bytes (the mapping may be rounded up to whole pages).
    public let size: UInt64

    /// The largest block this accepts (2^52 bytes, 4 PiB): beyond any host's memory, and far
    /// enough below `Int.max` that rounding the mapping up to whole huge pages cannot overflow.
    public static let maximumSize: UInt64 = 1 << 52

    /// Allocates `size` bytes of zeroed memory (2 MiB aligned, huge pages advised, as QEMU).
    /// - Throws: `SystemError` (ENOMEM) for a size above `maximumSize`, or the mmap failure.
    package init(size: UInt64) throws(SystemError) {
        guard size <= Self.maximumSize else {
            throw SystemError(operation: "mmap", arguments: "guest RAM size=\(size)", errno: ENOMEM)
        }
        mapping = try MappedMemory(guestRAM: Int(size))
        self.size = size
    }

    /// Host virtual address of byte 0, for KVM_SET_USER_MEMORY_REGION only.
    public var hostAddress: UInt64 { mapping.hostAddress }

    /// Host memory for `offset..<offset+length` in small pages rather than transparent huge
    /// pages (see `MappedMemory.preferSmallPages`): for a small area written once.
    package func preferSmallPages(offset: UInt64, length: UInt64) {
        guard offset < size, let o = Int(exactly: offset), let l = Int(exactly: min(length, size - offset)) else { return }
        mapping.preferSmallPages(offset: o, length: l)
    }

    /// Whether `[offset, offset + count)` lies inside the block (overflow-safe).
    @inline(__always)
    public func contains(offset: UInt64, count: Int) -> Bool {
        count >= 0 && offset <= size && UInt64(count) <= size - offset
    }

    /// Copies `count` bytes out, or nil when the range leaves the block.
    public func read(offset: UInt64, count: Int) -> [UInt8]? {
        guard contains(offset: offset, count: count) else { return nil }
        // SAFETY: [offset, offset + count) is inside the block (checked); offset <= size <= maximumSize.
        return unsafe [UInt8](UnsafeRawBufferPointer(start: mapping.base + Int(offset), count: count))
    }

    /// Copies `bytes` in; false (and nothing written) when the range leaves the block.
    @discardableResult
    public func write(_ bytes: some Collection<UInt8>, offset: UInt64) -> Bool {
        guard contains(offset: offset, count: bytes.count) else { return false }
        // SAFETY: [offset, offset + bytes.count) is inside the block (checked above).
        let base = unsafe mapping.base + Int(offset)
        // One bulk copy where the bytes are contiguous (arrays and their slices: every DMA
        // and virtio transfer); byte by byte otherwise.
        // SAFETY: copies exactly bytes.count bytes into the checked range.
        let copied: Void? = bytes.withContiguousStorageIfAvailable { source in
            if let from = source.baseAddress { unsafe base.copyMemory(from: from, byteCount: source.count) }
        }
        if copied == nil {
            var i = 0
            for b in bytes {
                // SAFETY: i < bytes.count, inside the checked range.
                unsafe base.storeBytes(of: b, toByteOffset: i, as: UInt8.self)
                i += 1
            }
        }
        return true
    }

    /// Reads a little-endian value of `size` (1...8) bytes; nil when out of range.
    @inline(__always)
    public func load(offset: UInt64, size: Int) -> UInt64? {
        guard size >= 1, size <= 8, contains(offset: offset, count: size) else { return nil }
        // SAFETY: [offset, offset + size) is inside the block (checked above).
        let p = unsafe mapping.base + Int(offset)
        var v: UInt64 = 0
        for i in 0..<size { v |= UInt64(unsafe p.load(fromByteOffset: i, as: UInt8.self)) << (8 * UInt64(i)) }
        return v
    }

    /// Writes the low `size` (1...8) bytes of `value` little-endian; false when out of range.
    @inline(__always)
    @discardableResult
    public func store(offset: UInt64, value: UInt64, size: Int) -> Bool {
        guard size >= 1, size <= 8, contains(offset: offset, count: size) else { return false }
        // SAFETY: [offset, offset + size) is inside the block (checked above).
        let p = unsafe mapping.base + Int(offset)
        for i in 0..<size { unsafe p.storeBytes(of: UInt8(truncatingIfNeeded: value >> (8 * UInt64(i))), toByteOffset: i, as: UInt8.self) }
        return true
    }
}
