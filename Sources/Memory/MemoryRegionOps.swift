/// Byte order a device's registers use; values are converted between it and the guest's
/// (little-endian x86) order at dispatch. QEMU: `enum device_endian`.
public enum Endianness: Sendable, Equatable {
    case little
    case big
}

/// Which access sizes a region accepts (`valid`) or its callbacks implement (`implementation`).
/// QEMU: `MemoryRegionOps.valid` / `.impl`.
public struct AccessConstraints: Sendable, Equatable {
    /// Smallest access in bytes (0 means 1, as in QEMU).
    public var minAccessSize: Int
    /// Largest access in bytes (0 means "any" for `valid`, 4 for `implementation`, as in QEMU).
    public var maxAccessSize: Int
    /// Whether accesses not aligned to their size are allowed.
    public var unaligned: Bool

    public init(minAccessSize: Int = 1, maxAccessSize: Int = 4, unaligned: Bool = false) {
        self.minAccessSize = minAccessSize
        self.maxAccessSize = maxAccessSize
        self.unaligned = unaligned
    }
}

/// A device's register callbacks and the access rules the memory core enforces before
/// calling them. Offsets are relative to the region; values are in the device's byte order.
/// QEMU: `MemoryRegionOps`.
public struct MemoryRegionOps: Sendable {
    /// Reads `size` bytes at `offset`; the result's low `size` bytes are used.
    public typealias Read = @Sendable (_ offset: UInt64, _ size: Int) -> UInt64
    /// Writes the low `size` bytes of `value` at `offset`.
    public typealias Write = @Sendable (_ offset: UInt64, _ value: UInt64, _ size: Int) -> Void

    /// Decides whether the region takes an access (offset, size, is-write) before the size
    /// rules are checked; nil takes everything. QEMU: `valid.accepts`.
    public typealias Accepts = @Sendable (_ offset: UInt64, _ size: Int, _ isWrite: Bool) -> Bool

    public var read: Read
    public var write: Write
    public var endianness: Endianness
    public var valid: AccessConstraints
    public var implementation: AccessConstraints
    public var accepts: Accepts?

    public init(
        read: @escaping Read,
        write: @escaping Write,
        endianness: Endianness = .little,
        valid: AccessConstraints = AccessConstraints(minAccessSize: 1, maxAccessSize: 4, unaligned: false),
        implementation: AccessConstraints = AccessConstraints(minAccessSize: 1, maxAccessSize: 4, unaligned: false),
        accepts: Accepts? = nil
    ) {
        self.read = read
        self.write = write
        self.endianness = endianness
        self.valid = valid
        self.implementation = implementation
        self.accepts = accepts
    }

    /// What memory nobody claims is made of: every access refused, so a read yields 0 and a
    /// write is dropped, both with `.decodeError` (the access-size fields are QEMU's zeroed
    /// defaults). QEMU: `unassigned_mem_ops` (`unassigned_mem_accepts()` refusing all;
    /// `unassigned_mem_read()` returning 0), softmmu/memory.c 7.2.
    public static let unassigned = MemoryRegionOps(
        read: { _, _ in 0 }, write: { _, _, _ in },
        valid: AccessConstraints(minAccessSize: 0, maxAccessSize: 0, unaligned: false),
        implementation: AccessConstraints(minAccessSize: 0, maxAccessSize: 0, unaligned: false),
        accepts: { _, _, _ in false })

    /// What the "io" root is made of, so that ports no device claims read all ones and
    /// ignore writes, both *succeeding*. The access-size fields are QEMU's zeroed defaults
    /// (any size valid; pieces aligned, at most 4 bytes). QEMU: `unassigned_io_ops`
    /// (softmmu/ioport.c 7.2), the ops of `system_io` in `memory_map_init()`.
    public static let unassignedIO = MemoryRegionOps(
        read: { _, _ in UInt64.max }, write: { _, _, _ in },
        valid: AccessConstraints(minAccessSize: 0, maxAccessSize: 0, unaligned: false),
        implementation: AccessConstraints(minAccessSize: 0, maxAccessSize: 0, unaligned: false))
}

extension MemoryRegion {
    /// QEMU's "io" root: a 64 KiB I/O region over `MemoryRegionOps.unassignedIO`, under which
    /// devices map their ports. Ports nobody claims read all ones and take writes, with
    /// `MemTxResult.ok`, and the I/O flat view shows the root in every gap (as `info mtree -f`
    /// does). QEMU: `memory_region_init_io(system_io, NULL, &unassigned_io_ops, NULL, "io",
    /// 65536)` in `memory_map_init()`.
    public static func ioRoot(name: String = "io", size: UInt128 = 0x10000) -> MemoryRegion {
        .io(name: name, size: size, ops: .unassignedIO)
    }
}

/// Outcome of a memory transaction. QEMU: `MemTxResult`.
public enum MemTxResult: Sendable, Equatable {
    case ok
    /// Nothing decodes the address, or the region refused the access size/alignment.
    case decodeError
    /// The region decoded the address but the access failed (e.g. a write to ROM).
    case accessError
}
