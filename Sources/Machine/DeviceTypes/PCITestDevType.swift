import Devices

extension DeviceType {
    /// `-device pci-testdev`: kvm-unit-tests' ioeventfd test device (MMIO BAR0, I/O BAR1).
    /// QEMU: hw/misc/pci-testdev.c.
    public static let pciTestDev = DeviceType(
        name: "pci-testdev", bus: .pci, category: .misc, description: "PCI Test Device", properties: [],
        realize: { d, context in
            // Zero-length ("fast MMIO") wildcard ioeventfds only when KVM offers them, as QEMU.
            try context.plugPCI(d) { _ in try PCITestDev(fastMMIO: context.fastMMIO) }
        })
}
