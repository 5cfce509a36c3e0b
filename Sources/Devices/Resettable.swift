/// A device with a reset state the machine returns it to on a system reset (QMP system_reset,
/// 0xcf9, the i8042's reset line, a triple fault). QEMU: DeviceClass.reset / the Resettable
/// interface, walked by qemu_devices_reset().
public protocol Resettable: AnyObject, Sendable {
    /// Back to the power-on state, as the machine's reset line leaves it.
    func reset()
}
