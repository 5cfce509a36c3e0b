import Devices

/// A PCI function's configuration space as created, and a way back to it.
struct PCIConfigSnapshot {
    let bytes: [UInt8]

    init(_ device: PCIDevice) {
        bytes = (0..<256).map { UInt8(truncatingIfNeeded: device.configRead(offset: $0, size: 1)) }
    }

    /// Writes back, as a guest would (through the write masks, with the device's own side
    /// effects: BARs unmapped, MSI-X control cleared), every byte that differs, command register
    /// first. Config space is the whole state: BAR mappings follow it on every write.
    func restore(_ device: PCIDevice) {
        let command = UInt32(bytes[4]) | UInt32(bytes[5]) << 8
        if device.configRead(offset: PCIDevice.Register.command, size: 2) != command {
            device.configWrite(offset: PCIDevice.Register.command, value: command, size: 2)
        }
        for (i, b) in bytes.enumerated() where UInt8(truncatingIfNeeded: device.configRead(offset: i, size: 1)) != b {
            device.configWrite(offset: i, value: UInt32(b), size: 1)
        }
    }

    /// The offsets whose bytes differ from the snapshot outside the guest-writable ones, i.e.
    /// read-only bytes the guest managed to change.
    func readOnlyChanges(_ device: PCIDevice, writable: (Int) -> Bool) -> [Int] {
        (0..<256).filter { !writable($0) && UInt8(truncatingIfNeeded: device.configRead(offset: $0, size: 1)) != bytes[$0] }
    }
}
