extension MachineConfiguration {
    /// The drivers whose `chardev=` property takes a chardev for itself.
    static let chardevUsers: Set<String> = ["isa-serial", "virtconsole", "virtserialport"]

    /// Each chardev serves one frontend (a serial port, a console port or a monitor) and each
    /// netdev one NIC; a monitor names an existing chardev, and QMP (mode=control) needs a
    /// listening socket here. Also QEMU's warnings for a netdev or NIC without a peer.
    /// QEMU: qemu_chr_fe_init() "it's in use", monitor_init_opts(), net_check_clients().
    mutating func checkBackendUse() throws(ConfigurationError) {
        var owner: [String: String] = [:]
        for d in devices where Self.chardevUsers.contains(d.driver) {
            guard let id = d.string("chardev") else { continue }
            if owner[id] != nil { throw ConfigurationError("-device \(d.driver): Property '\(d.driver).chardev' can't take value '\(id)', it's in use") }
            owner[id] = d.driver
        }
        for m in chardevMonitors {
            guard let spec = chardevs.first(where: { $0.id == m.chardev }) else {
                throw ConfigurationError("-mon chardev=\(m.chardev): chardev \"\(m.chardev)\" not found")
            }
            if let user = owner[m.chardev] { throw ConfigurationError("-mon chardev=\(m.chardev): the chardev is in use by \(user)") }
            owner[m.chardev] = "a monitor"
            if m.mode == .control {
                guard case .socket(_, true, _) = spec.backend else {
                    throw ConfigurationError("-mon chardev=\(m.chardev),mode=control: QMP here needs a listening socket: -chardev socket,id=\(m.chardev),path=PATH,server=on,wait=off")
                }
            }
        }
        var nics = 0
        var peers = Set<String>()
        for d in devices where d.driver == "virtio-net-pci" {
            if let id = d.string("netdev") {
                if peers.contains(id) { throw ConfigurationError("-device virtio-net-pci: Property 'virtio-net-pci.netdev' can't take value '\(id)', it's in use") }
                peers.insert(id)
            } else {
                warnings.append("nic virtio-net-pci.\(nics) has no peer")
            }
            nics += 1
        }
        for n in netdevs where !peers.contains(n.id) { warnings.append("netdev \(n.id) has no peer") }
    }
}
