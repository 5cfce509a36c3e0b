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

    public var read: Read
    public var write: Write
    public var endianness: Endianness
    public var valid: AccessConstraints
    public var implementation: AccessConstraints

    public init(
        read: @escaping Read,
        write: @escaping Write,
        endianness: Endianness = .little,
        valid: AccessConstraints = AccessConstraints(minAccessSize: 1, maxAccessSize: 4, unaligned: false),
        implementation: AccessConstraints = AccessConstraints(minAccessSize: 1, maxAccessSize: 4, unaligned: false)
    ) {
        self.read = read
        self.write = write
        self.endianness = endianness
        self.valid = valid
        self.implementation = implementation
    }

    /// What an address nobody claims behaves like: reads all ones, writes dropped, every access
    /// refused (so the caller sees a decode error). QEMU: `unassigned_mem_ops`/`unassigned_io_ops`.
    public static let unassigned = MemoryRegionOps(
        read: { _, _ in UInt64.max }, write: { _, _, _ in },
        valid: AccessConstraints(minAccessSize: 1, maxAccessSize: 8, unaligned: true),
        implementation: AccessConstraints(minAccessSize: 1, maxAccessSize: 8, unaligned: true))
}

/// Outcome of a memory transaction. QEMU: `MemTxResult`.
public enum MemTxResult: Sendable, Equatable {
    case ok
    /// Nothing decodes the address, or the region refused the access size/alignment.
    case decodeError
    /// The region decoded the address but the access failed (e.g. a write to ROM).
    case accessError
}
