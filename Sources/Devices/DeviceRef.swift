import Synchronization

/// How a device's region ops reach the device: set once, right after the device's init (the
/// ops are built before `self` exists). The reference is strong on purpose: once the machine
/// maps a device's region, the memory tree keeps the region and through it the device alive,
/// even if nobody else holds the device — as QEMU's device tree owns its devices for the
/// machine's lifetime. (The device↔region cycle means a device is never freed; a VM's devices
/// live as long as the VM.)
public final class DeviceRef<Target: AnyObject & Sendable>: Sendable {
    private let ref = Mutex<Target?>(nil)

    public init() {}

    public func set(_ target: Target) { ref.withLock { $0 = target } }

    public var value: Target? { ref.withLock { $0 } }
}
