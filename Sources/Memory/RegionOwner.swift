import Synchronization

/// How a device's region callbacks reach the device. A device builds its regions in `init`,
/// before `self` exists, so the ops go through an owner that the device sets once, right
/// after: `let owner = RegionOwner<CMOS>(); region = .io(…, ops: owner.ops(read: CMOS.read,
/// write: CMOS.write)); owner.set(self)`.
///
/// The reference is strong on purpose: once the machine maps a device's region, the memory
/// tree keeps the region and through it the device alive, as QEMU's device tree owns its
/// devices for the machine's lifetime. QEMU: the `opaque` of memory_region_init_io().
public final class RegionOwner<Device: AnyObject & Sendable>: Sendable {
    private let device = Mutex<Device?>(nil)

    /// An owner with no device yet; ``set(_:)`` binds it.
    public init() {}

    /// Binds the device; called once, at the end of its `init`.
    public func set(_ device: Device) { self.device.withLock { $0 = device } }

    /// The device, once set.
    public var value: Device? { device.withLock { $0 } }

    /// Ops that forward each access to the device's `read`/`write` (usually unapplied method
    /// references, `Device.read`). Before `set` — never once the region is reachable — reads
    /// return `unbound` and writes are dropped.
    public func ops(read: @escaping @Sendable (Device) -> (_ offset: UInt64, _ size: Int) -> UInt64,
                    write: @escaping @Sendable (Device) -> (_ offset: UInt64, _ value: UInt64, _ size: Int) -> Void,
                    unbound: UInt64 = .max,
                    endianness: Endianness = .little,
                    valid: AccessConstraints = AccessConstraints(minAccessSize: 1, maxAccessSize: 4),
                    implementation: AccessConstraints = AccessConstraints(minAccessSize: 1, maxAccessSize: 4)) -> MemoryRegionOps {
        MemoryRegionOps(
            read: { [self] offset, size in value.map { read($0)(offset, size) } ?? unbound },
            write: { [self] offset, v, size in if let d = value { write(d)(offset, v, size) } },
            endianness: endianness, valid: valid, implementation: implementation)
    }
}

extension AccessConstraints {
    /// Byte accesses only (most ISA registers).
    public static let bytes = AccessConstraints(minAccessSize: 1, maxAccessSize: 1)

    /// Any size from 1 to `max` bytes.
    public static func upTo(_ max: Int) -> AccessConstraints { AccessConstraints(minAccessSize: 1, maxAccessSize: max) }
}
