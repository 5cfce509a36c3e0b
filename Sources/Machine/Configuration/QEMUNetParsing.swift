import VirtIO
import VMMSys

/// What `-nic` asks for: a backend and the NIC on it.
public struct NICRequest: Sendable, Equatable {
    /// The tap backend `-nic` creates (id `__org.qemu.nicN`).
    public var netdev: NetdevSpec
    /// `-device` text for the NIC (model and mac).
    public var device: String
}

extension QEMUValueParsing {
    /// The most tap queues (one per virtio-net queue pair) a NIC takes here.
    public static let maxTapQueues = VirtIONet.maxQueuePairs

    /// Parses `-netdev tap,id=ID[,ifname=NAME][,script=no][,downscript=no][,queues=N][,vnet_hdr=on|off][,fd=N|fds=A:B]`.
    /// Anything but tap is refused in one line (user-mode networking points to tap). Returns the
    /// backend and warnings. QEMU: net_client_init1() → net_init_tap().
    public static func netdev(_ text: String, option: String = "-netdev") throws(ConfigurationError) -> (NetdevSpec, [String]) {
        let kv = keyValues(text, impliedKey: "type")
        let type = kv.first { $0.key == "type" }?.value ?? ""
        let context = "\(option) \(text)"
        switch type {
        case "tap": break
        case "user":
            throw ConfigurationError("\(context): user-mode networking (slirp) is not supported here; "
                + "use -netdev tap,id=ID,ifname=TAP,script=no,downscript=no with a tap you configure")
        case "":
            throw ConfigurationError("\(context): Parameter 'type' is missing")
        case "bridge", "socket", "stream", "dgram", "vde", "l2tpv3", "vhost-user", "vhost-vdpa", "hubport", "netmap", "af-xdp":
            throw ConfigurationError("\(context): netdev type '\(type)' is not supported here (only tap)")
        default:
            throw ConfigurationError("\(context): Parameter 'type' does not accept value '\(type)'")
        }
        var id: String?, ifname: String?, queues: Int?, vnet = TapVnetHeader.auto, fds: [Int32] = []
        var script: String?, downscript: String?
        var warnings: [String] = []
        func bool(_ k: String, _ v: String) throws(ConfigurationError) -> Bool {
            guard let b = DeviceProperty.bool(v) else { throw ConfigurationError("\(context): Parameter '\(k)' expects 'on' or 'off'") }
            return b
        }
        for (k, v) in kv where k != "type" {
            switch k {
            case "id": id = v
            case "ifname": ifname = v
            case "script": script = v
            case "downscript": downscript = v
            case "queues":
                guard let n = Int(v), n >= 1 else { throw ConfigurationError("\(context): Parameter 'queues' expects a positive number") }
                guard n <= maxTapQueues else {
                    throw ConfigurationError("\(context): queues=\(n): at most \(maxTapQueues) queues here (a virtio-net queue pair each; a PCI function has 64 MSI-X vectors)")
                }
                queues = n
            case "vnet_hdr": vnet = try bool(k, v) ? .on : .off
            case "fd", "fds":
                let parts = v.split(separator: ":", omittingEmptySubsequences: false)
                guard !parts.isEmpty, parts.count <= maxTapQueues else { throw ConfigurationError("\(context): \(k)= needs descriptor numbers") }
                for p in parts {
                    guard let n = Int32(p), n >= 0 else { throw ConfigurationError("\(context): \(k)=\(v): '\(p)' is not a descriptor number") }
                    fds.append(n)
                }
                if k == "fd" && fds.count != 1 { throw ConfigurationError("\(context): fd= takes one descriptor (fds= several)") }
            case "vhost":
                if try bool(k, v) {
                    throw ConfigurationError("\(context): vhost=on: vhost-net is not supported here; the device runs in vmm's I/O thread (vhost=off)")
                }
            case "vhostforce":
                if try bool(k, v) { throw ConfigurationError("\(context): vhostforce=on: vhost-net is not supported here") }
            case "sndbuf", "poll-us":
                warnings.append("\(option) \(id ?? type): '\(k)=\(v)' ignored")
            case "br", "helper", "vhostfd", "vhostfds":
                throw ConfigurationError("\(context): '\(k)' is not supported here")
            default:
                throw ConfigurationError("\(context): Invalid parameter '\(k)'")
            }
        }
        guard let id, !id.isEmpty else { throw ConfigurationError("\(context): Parameter 'id' is missing") }
        // -nic's backends get QEMU's internal ids ("__org.qemu.nicN"), which users cannot write.
        guard DeviceRegistry.isValidID(id) || (option == "-nic" && id.hasPrefix("__org.qemu.")) else {
            throw ConfigurationError("\(context): Parameter 'id' expects an identifier")
        }
        if !fds.isEmpty {
            // QEMU: "ifname=, script=, downscript=, vnet_hdr=, helper=, queues=, fds=, and vhostfds= are invalid with fd=".
            if ifname != nil || script != nil || downscript != nil || queues != nil {
                throw ConfigurationError("\(context): ifname=, script=, downscript= and queues= are invalid with fd=/fds=")
            }
        } else {
            for (name, value) in [("script", script), ("downscript", downscript)] {
                if let value, value != "no", !value.isEmpty {
                    throw ConfigurationError("\(context): \(name)=\(value): vmm never runs scripts; configure the tap beforehand and use \(name)=no")
                }
            }
            if script == nil || downscript == nil {
                warnings.append("\(option) \(id): no script= or downscript= is run here (QEMU's defaults would run /etc/qemu-ifup and /etc/qemu-ifdown)")
            }
            if let ifname {
                do { try TapDevice.checkName(ifname) } catch { throw ConfigurationError("\(context): \(error)") }
            }
        }
        let spec = NetdevSpec(id: id, ifname: ifname, queues: fds.isEmpty ? queues ?? 1 : fds.count, vnetHeader: vnet, fds: fds)
        return (spec, warnings)
    }

    /// Parses `-nic tap,...[,model=M][,mac=MAC]` into a tap backend with id `__org.qemu.nicN`
    /// and the NIC on it, or nil for `-nic none`. QEMU adds its machine's default model (an
    /// e1000 on pc), which does not exist here: vmm adds virtio-net-pci and says so.
    /// QEMU: net_param_nic().
    public static func nic(_ text: String, index: Int) throws(ConfigurationError) -> (NICRequest?, [String]) {
        let kv = keyValues(text, impliedKey: "type")
        let type = kv.first { $0.key == "type" }?.value ?? ""
        if type == "none" { return (nil, []) }
        var model: String?, mac: String?
        var rest: [String] = []
        for (k, v) in kv {
            switch k {
            case "model": model = v
            case "mac": mac = v
            case "type": rest.insert(v, at: 0)
            case "id": break
            default: rest.append("\(k)=\(v.split(separator: ",", omittingEmptySubsequences: false).joined(separator: ",,"))")
            }
        }
        var warnings: [String] = []
        switch model {
        case nil:
            warnings.append("-nic \(text): QEMU's pc machine would add an e1000 here; vmm adds virtio-net-pci")
        case "virtio", "virtio-net-pci", "virtio-net":
            break
        case "help", "?":
            throw ConfigurationError("-nic: the available NIC models are: virtio-net-pci (alias virtio)")
        case let m?:
            throw ConfigurationError("-nic \(text): model '\(m)' is not available here (virtio-net-pci is)")
        }
        let id = "__org.qemu.nic\(index)"
        let (netdev, more) = try netdev((rest + ["id=\(id)"]).joined(separator: ","), option: "-nic")
        var device = "virtio-net-pci,netdev=\(id)"
        if let mac { device += ",mac=\(mac)" }
        return (NICRequest(netdev: netdev, device: device), warnings + more)
    }
}
