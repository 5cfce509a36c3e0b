import VirtIO

extension DeviceType {
    /// What every virtio-pci device takes. QEMU: virtio_pci_properties + the virtio device's
    /// common bits (hw/virtio/virtio-pci.c, virtio.c).
    static let virtioPCIProperties: [DeviceProperty] = [
        DeviceProperty("disable-legacy", .onOffAuto, default: .onOffAuto(nil), help: "on/off/auto"),
        DeviceProperty("disable-modern", .bool, default: .bool(false), check: { v in
            v == .bool(true) ? "disable-modern=on is not supported: the devices here are modern (virtio 1.x) only" : nil
        }),
        DeviceProperty("event_idx", .bool, default: .bool(true), help: "on/off"),
        DeviceProperty("indirect_desc", .bool, default: .bool(true), help: "on/off"),
        DeviceProperty("ioeventfd", .bool, default: .bool(true), help: "on/off"),
        DeviceProperty("vectors", .uint32, default: .unsigned(0xffff_ffff), check: { v in
            if case .unsigned(let n) = v, n != 0xffff_ffff, n > 64 { "vectors=\(n): at most 64 MSI-X vectors" } else { nil }
        }),
    ]

    /// The transport options an instance asks for.
    static func virtioOptions(_ d: DeviceInstance) -> VirtIOPCI.Options {
        let vectors = d.unsigned("vectors")
        return VirtIOPCI.Options(vectors: vectors == 0xffff_ffff ? nil : Int(vectors), ioeventfd: d.bool("ioeventfd"),
                                 eventIndex: d.bool("event_idx"), indirectDescriptors: d.bool("indirect_desc"))
    }

    /// Plugs a virtio device on its PCI transport.
    static func plugVirtIO(_ d: DeviceInstance, _ context: DeviceContext, _ device: any VirtIODevice) throws -> VirtIOPCI {
        try context.plugPCI(d) { intx in
            try VirtIOPCI(device: device, dma: context.dma, msiController: context.msi, intx: intx, ioThread: context.ioThread,
                          fastMMIO: context.fastMMIO, options: virtioOptions(d), logger: context.logger)
        }
    }
}
