import Devices

extension DeviceType {
    /// `-device isa-debug-exit[,iobase=N][,iosize=N]`: a write of V ends the VM with status
    /// (V << 1) | 1. QEMU: hw/misc/debugexit.c.
    public static let isaDebugExit = DeviceType(
        name: "isa-debug-exit", bus: .isa, category: .misc,
        properties: [
            DeviceProperty("iobase", .uint32, default: .unsigned(0x501)),
            DeviceProperty("iosize", .uint32, default: .unsigned(2)),
        ],
        validate: { d, _ throws(ConfigurationError) in
            let base = d.unsigned("iobase"), size = d.unsigned("iosize")
            guard (1...4).contains(size), base < 0x10000, size <= 0x10000 - base else {
                throw ConfigurationError("-device isa-debug-exit: ports 0x\(String(base, radix: 16))+\(size) must lie in 0..0xffff, 1 to 4 of them")
            }
        },
        realize: { d, context in
            let exit = context.exit
            let device = ISADebugExit(iobase: UInt16(d.unsigned("iobase")), iosize: UInt16(d.unsigned("iosize")),
                                      onExit: { exit($0, "isa-debug-exit") })
            device.map(into: context.io)
            return device
        })
}
