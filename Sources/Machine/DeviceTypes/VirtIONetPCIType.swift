import VirtIO

extension DeviceType {
    /// `-device virtio-net-pci[,netdev=ID][,mac=MAC][,mq=on][,vectors=N][,<feature>=on|off]`: the
    /// virtio network device on a tap backend (`-netdev tap`), with QEMU's feature properties
    /// and defaults; without `netdev=` a NIC with no peer (what it sends is dropped).
    /// QEMU: hw/net/virtio-net.c, hw/virtio/virtio-net-pci.c.
    public static let virtioNetPCI = DeviceType(
        name: "virtio-net-pci", bus: .pci, category: .network, alias: "virtio-net",
        properties: virtioPCIProperties + [
            DeviceProperty("netdev", .link(.netdev), help: "ID of a netdev to use as a backend"),
            DeviceProperty("mac", .string, help: "Ethernet 6-byte MAC Address, example: 52:54:00:12:34:56", check: { v in
                if case .string(let s) = v, MACAddress(parsing: s) == nil { "Property 'virtio-net-pci.mac' doesn't take value '\(s)'" } else { nil }
            }),
            DeviceProperty("rx_queue_size", .uint16, default: .unsigned(UInt64(VirtIONet.dataQueueSize))),
            DeviceProperty("tx_queue_size", .uint16, default: .unsigned(UInt64(VirtIONet.dataQueueSize))),
            DeviceProperty("host_mtu", .uint16, default: .unsigned(0), check: { v in
                v == .unsigned(0) ? nil : "host_mtu= is not supported here"
            }),
        ] + VirtIONetFeature.properties.map { p in
            DeviceProperty(p.name, .bool, default: .bool(VirtIONetFeature.qemuDefaults & p.bit != 0), help: "on/off")
        },
        validate: { d, c throws(ConfigurationError) in
            if let id = d.string("netdev"), !c.netdevs.contains(where: { $0.id == id }) {
                throw ConfigurationError("-device virtio-net-pci: Property 'virtio-net-pci.netdev' can't find value '\(id)'")
            }
        },
        realize: { d, context in
            var features = VirtIONetFeature.mac
            for p in VirtIONetFeature.properties where d.bool(p.name) { features |= p.bit }
            let backend = try d.string("netdev").map { id throws(MachineError) in try context.netBackend(id) }
            let pairs = d.string("netdev").flatMap { id in context.configuration.netdevs.first { $0.id == id }?.queues } ?? 1
            let net: VirtIONet
            do {
                net = try VirtIONet(mac: context.macAddress(d.string("mac")), backend: backend, features: features, queuePairs: pairs,
                                    rxQueueSize: UInt16(truncatingIfNeeded: d.unsigned("rx_queue_size")),
                                    txQueueSize: UInt16(truncatingIfNeeded: d.unsigned("tx_queue_size")), logger: context.logger)
            } catch {
                throw MachineError("-device virtio-net-pci: \(error)")
            }
            return try plugVirtIO(d, context, net)
        })
}
