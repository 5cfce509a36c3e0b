import VirtIO

extension DeviceType {
    /// `-device virtio-serial-pci[,max_ports=N][,emergency-write=on|off]`: the virtio console
    /// device; `virtconsole` and `virtserialport` devices plug into it. MSI-X vectors default
    /// to max_ports + 1, as QEMU's. QEMU: hw/char/virtio-serial-bus.c, virtio-serial-pci.c.
    public static let virtioSerialPCI = DeviceType(
        name: "virtio-serial-pci", bus: .pci, category: .input, alias: "virtio-serial",
        properties: virtioPCIProperties + [
            DeviceProperty("max_ports", .uint32, default: .unsigned(UInt64(VirtIOSerial.defaultMaxPorts)), check: { v in
                guard case .unsigned(let n) = v else { return nil }
                if n == 0 { return "Maximum number of serial ports not specified" }
                return n > UInt64(VirtIOSerial.maxSupportedPorts) ? "maximum ports supported: \(VirtIOSerial.maxSupportedPorts)" : nil
            }),
            DeviceProperty("emergency-write", .bool, default: .bool(true), help: "on/off"),
        ],
        realize: { d, context in
            let serial: VirtIOSerial
            do { serial = try VirtIOSerial(maxPorts: Int(d.unsigned("max_ports")), emergencyWrite: d.bool("emergency-write"), logger: context.logger) } catch {
                throw MachineError("-device virtio-serial-pci: \(error)")
            }
            var options = virtioOptions(d)
            if options.vectors == nil { options.vectors = min(serial.maxPorts + 1, 64) }
            let device = try context.plugPCI(d) { intx in
                try VirtIOPCI(device: serial, dma: context.dma, msiController: context.msi, intx: intx, ioThread: context.ioThread,
                              fastMMIO: context.fastMMIO, options: options, logger: context.logger)
            }
            context.virtioSerialBuses.append(serial)
            return device
        })
}
