import Devices

extension DeviceType {
    /// `-device isa-serial[,index=N][,iobase=][,irq=][,chardev=ID]`: a 16550A UART. `-serial`
    /// creates these too, index 0 first. Index N defaults to COM(N+1)'s port and IRQ.
    /// QEMU: hw/char/serial-isa.c (isa_serial_io, isa_serial_irq).
    public static let isaSerial = DeviceType(
        name: "isa-serial", bus: .isa, category: .input,
        properties: [
            DeviceProperty("chardev", .link(.chardev), help: "ID of a chardev to use as a backend"),
            DeviceProperty("index", .uint32, default: .unsigned(0xffff_ffff)),
            DeviceProperty("iobase", .uint32, default: .unsigned(0xffff_ffff)),
            DeviceProperty("irq", .uint32, default: .unsigned(0xffff_ffff)),
        ],
        validate: { d, c throws(ConfigurationError) in
            if d.unsigned("index") != 0xffff_ffff && d.unsigned("index") >= 4 {
                throw ConfigurationError("-device isa-serial: Max. supported number of ISA serial ports is 4.")
            }
            if let id = d.string("chardev"), !c.chardevs.contains(where: { $0.id == id }) {
                throw ConfigurationError("-device isa-serial: Property 'isa-serial.chardev' can't find value '\(id)'")
            }
        },
        realize: { d, context in
            let requested = d.unsigned("index")
            guard let index = requested == 0xffff_ffff ? (0..<4).first(where: { !context.serialIndexes.contains($0) }) : Int(requested),
                  !context.serialIndexes.contains(index) else {
                throw MachineError("-device isa-serial: no free ISA serial port index (at most 4)")
            }
            context.serialIndexes.insert(index)
            let base = d.unsigned("iobase") == 0xffff_ffff ? SerialPort.isaBases[index] : d.unsigned("iobase") & 0xffff
            let irq = d.unsigned("irq") == 0xffff_ffff ? SerialPort.isaIRQs[index] : UInt32(d.unsigned("irq") & 0xff)
            let backend = try context.serialBackend(chardev: d.string("chardev"), index: index)
            let port = SerialPort(backend: backend, irq: context.irq(irq), name: "serial")
            context.io.addSubregion(port.region, at: base)
            return port
        })
}
