import VirtIO

extension DeviceType {
    /// `-device virtio-rng-pci[,rng=ID][,max-bytes=N][,period=MS]`: the virtio entropy device,
    /// rate-limited as QEMU's. QEMU: hw/virtio/virtio-rng.c, virtio-rng-pci.c.
    public static let virtioRNGPCI = DeviceType(
        name: "virtio-rng-pci", bus: .pci, category: .misc, alias: "virtio-rng",
        properties: virtioPCIProperties + [
            DeviceProperty("rng", .link(.rng)),
            DeviceProperty("max-bytes", .uint64, default: .unsigned(VirtIORNG.unlimitedBytes), check: { v in
                if case .unsigned(let n) = v, n > UInt64(Int64.max) { "'max-bytes' parameter must be non-negative, and less than 2^63" } else { nil }
            }),
            DeviceProperty("period", .uint32, default: .unsigned(UInt64(VirtIORNG.defaultPeriodMilliseconds)), check: { v in
                v == .unsigned(0) ? "'period' parameter expects a positive integer" : nil
            }),
        ],
        validate: { d, c throws(ConfigurationError) in
            if let id = d.string("rng"), !c.objects.contains(where: { $0.id == id && $0.isRNG }) {
                throw ConfigurationError("-device virtio-rng-pci,rng=\(id): Device '\(id)' not found")
            }
        },
        realize: { d, context in
            try plugVirtIO(d, context, VirtIORNG(maxBytes: d.unsigned("max-bytes"), periodMilliseconds: UInt32(d.unsigned("period"))))
        })
}
