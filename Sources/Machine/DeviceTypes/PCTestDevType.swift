import Devices

extension DeviceType {
    /// `-device pc-testdev`: kvm-unit-tests' ISA test device (scratch ports, IRQ lines, iomem).
    /// QEMU: hw/misc/pc-testdev.c.
    public static let pcTestDev = DeviceType(
        name: "pc-testdev", bus: .isa, category: .misc, properties: [],
        realize: { _, context in
            let device = PCTestDev(irqLines: (0..<24).map { context.irq(UInt32($0)) })
            device.map(into: context.io, memory: context.pciMemory)      // QEMU: ISA memory = PCI memory
            return device
        })
}
