/// Byte order a device's registers use; values are converted between it and the guest's
/// (little-endian x86) order at dispatch. QEMU: `enum device_endian`.
public enum Endianness: Sendable, Equatable {
    /// The guest's own order on x86: values pass unchanged. QEMU: `DEVICE_LITTLE_ENDIAN`.
    case little
    /// Values are byte-swapped between the guest and the callbacks. QEMU: `DEVICE_BIG_ENDIAN`.
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

    /// Constraints with the given bounds; the defaults (1 to 4 bytes, aligned) fit most
    /// 32-bit device registers. QEMU: the `valid`/`impl` fields of a `MemoryRegionOps`
    /// initializer.
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

    /// Called for each read the region takes, split to `implementation` sizes. QEMU: `read`.
    public var read: Read
    /// Called for each write the region takes, split to `implementation` sizes. QEMU: `write`.
    public var write: Write
    /// The byte order of `read` results and `write` values. QEMU: `endianness`.
    public var endianness: Endianness
    /// The accesses the guest may make; others are refused (a read yields 0, a write is
    /// dropped, both with ``MemTxResult/decodeError``). QEMU: `valid`.
    public var valid: AccessConstraints
    /// The sizes the callbacks handle; the memory core splits or widens accesses to fit.
    /// QEMU: `impl`.
    public var implementation: AccessConstraints
    /// A last say on each access before the size rules. QEMU: `valid.accepts`.
    public var accepts: Accepts?

    /// Ops calling `read` and `write`, by default for little-endian registers taking aligned
    /// accesses of 1 to 4 bytes.
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
    /// The access completed. QEMU: `MEMTX_OK`.
    case ok
    /// Nothing decodes the address, the region refused the access size or alignment, or the
    /// write met read-only memory. QEMU: `MEMTX_DECODE_ERROR`.
    case decodeError
    /// A device reported that the access failed. QEMU: `MEMTX_ERROR`. Nothing returns it yet:
    /// ``MemoryRegionOps`` callbacks cannot fail.
    case accessError
}
