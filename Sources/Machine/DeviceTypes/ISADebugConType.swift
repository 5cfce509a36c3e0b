import Devices

extension DeviceType {
    /// `-device isa-debugcon[,iobase=N][,chardev=ID][,readback=N]` (also `-debugcon DEV`, which
    /// creates the chardev "debugcon" and this device at 0xe9): bytes written to the port go to
    /// the chardev; SeaBIOS logs to 0x402. QEMU: hw/char/debugcon.c, softmmu/vl.c debugcon_parse().
    public static let isaDebugCon = DeviceType(
        name: "isa-debugcon", bus: .isa, category: .misc,
        properties: [
            DeviceProperty("chardev", .link(.chardev), help: "ID of a chardev to use as a backend"),
            DeviceProperty("iobase", .uint32, default: .unsigned(0xe9)),
            DeviceProperty("readback", .uint32, default: .unsigned(0xe9)),
        ],
        validate: { d, c throws(ConfigurationError) in
            guard d.unsigned("iobase") <= 0xffff else {
                throw ConfigurationError("-device isa-debugcon: iobase 0x\(String(d.unsigned("iobase"), radix: 16)) is not an I/O port (0..0xffff)")
            }
            if let id = d.string("chardev"), !c.chardevs.contains(where: { $0.id == id }) {
                throw ConfigurationError("-device isa-debugcon: Property 'isa-debugcon.chardev' can't find value '\(id)'")
            }
        },
        realize: { d, context in
            // index -1: never the caller's serial-port override.
            let backend = try context.serialBackend(chardev: d.string("chardev"), index: -1)
            // A chardev with a far side (socket, pty, pipe) is served by the I/O thread even
            // though the device only writes: a socket server then takes its client, as QEMU's
            // chardev does with or without frontend handlers. Input is never read.
            if let chardev = backend as? Chardev {
                do { try chardev.attach(OutputOnlyFrontend(), ioThread: context.ioThread, retain: true) } catch {
                    throw MachineError("-chardev \(chardev.id): \(error)")
                }
            }
            let device = ISADebugCon(iobase: UInt16(d.unsigned("iobase") & 0xffff),
                                     readback: UInt8(truncatingIfNeeded: d.unsigned("readback")), backend: backend)
            device.map(into: context.io)
            return device
        })
}

/// The frontend of a device that only writes to its chardev (isa-debugcon): it takes no
/// input. QEMU: debugcon_realize() sets no read handlers.
private final class OutputOnlyFrontend: ChardevFrontend {
    func chardevCanReceive() -> Int { 0 }
    func chardevReceive(_ bytes: ArraySlice<UInt8>) {}
}
