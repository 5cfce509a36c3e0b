import VirtIO

extension DeviceType {
    /// `-device virtconsole[,chardev=ID][,nr=N][,name=S]`: a console port (hvc in Linux) of the
    /// first virtio-serial device. QEMU: hw/char/virtio-console.c ("virtconsole").
    public static let virtconsole = virtioSerialPort(name: "virtconsole", console: true)
    /// `-device virtserialport[,chardev=ID][,nr=N][,name=S]`: a named port (/dev/vport*p* in
    /// Linux) whose host side opens and closes with its chardev. QEMU: "virtserialport".
    public static let virtserialport = virtioSerialPort(name: "virtserialport", console: false)

    static func virtioSerialPort(name: String, console: Bool) -> DeviceType {
        DeviceType(
            name: name, bus: .system, category: .input,
            properties: [
                DeviceProperty("chardev", .link(.chardev), help: "ID of a chardev to use as a backend"),
                DeviceProperty("nr", .uint32, default: .unsigned(0xffff_ffff)),
                DeviceProperty("name", .string),
            ],
            validate: { d, c throws(ConfigurationError) in
                // The port plugs into a virtio-serial device created before it. QEMU: qdev_device_add().
                let index = c.devices.firstIndex(of: d) ?? c.devices.count
                guard c.devices[..<index].contains(where: { $0.driver == "virtio-serial-pci" }) else {
                    throw ConfigurationError("-device \(name): No 'virtio-serial-bus' bus found for device '\(name)'")
                }
                if let id = d.string("chardev"), !c.chardevs.contains(where: { $0.id == id }) {
                    throw ConfigurationError("-device \(name): Property '\(name).chardev' can't find value '\(id)'")
                }
            },
            realize: { d, context in
                guard let bus = context.virtioSerialBuses.first else {
                    throw MachineError("-device \(name): No 'virtio-serial-bus' bus found for device '\(name)'")
                }
                let chardev = try d.string("chardev").map { id throws(MachineError) in try context.chardev(id) }
                let nr = d.unsigned("nr")
                let port: VirtIOSerialPort
                do {
                    port = try bus.addPort(nr: nr == 0xffff_ffff ? nil : UInt32(truncatingIfNeeded: nr), name: d.string("name"),
                                           console: console, chardev: chardev)
                } catch {
                    throw MachineError("-device \(name): \(error)")
                }
                if let chardev {
                    do { try chardev.attach(port, ioThread: context.ioThread) } catch { throw MachineError("-device \(name): \(error)") }
                }
                return port
            })
    }
}
