import VMMSys

/// Parsers for the values of QEMU's options, following QEMU's documented syntax.
public enum QEMUValueParsing {
    /// Parses `-m` the way QEMU does: a bare number is MiB; suffixes B, K, M, G, T, P, E
    /// (either case) scale by powers of 1024; a fraction is allowed with a suffix ("1.5G").
    /// `size=` prefix and extra `,slots=/maxmem=` properties are accepted (properties ignored).
    public static func memorySize(_ text: String) throws(ConfigurationError) -> UInt64 {
        var spec = Substring(text)
        // `-m size=256M,slots=2,maxmem=4G`
        let parts = spec.split(separator: ",", omittingEmptySubsequences: false)
        spec = parts.first ?? ""
        if spec.hasPrefix("size=") { spec = spec.dropFirst(5) }
        for extra in parts.dropFirst() {
            if let key = extra.split(separator: "=").first, key == "size" {
                spec = extra.dropFirst(5)
            }
        }
        guard let bytes = size(spec, defaultUnitShift: 20) else {
            throw ConfigurationError("-m: invalid RAM size '\(text)' (examples: 256, 256M, 2G)")
        }
        guard bytes >= 1 << 20 else {
            throw ConfigurationError("-m: RAM size '\(text)' is too small (at least 1M)")
        }
        guard bytes <= 1 << 40 else {
            throw ConfigurationError("-m: RAM size '\(text)' is too large (at most 1T)")
        }
        return bytes
    }

    /// A size with an optional unit suffix; `defaultUnitShift` applies to a bare number.
    static func size(_ text: Substring, defaultUnitShift: Int) -> UInt64? {
        var s = text
        guard !s.isEmpty else { return nil }
        var shift = defaultUnitShift
        if let last = s.last, !last.isNumber, last != "." {
            switch last.uppercased() {
            case "B": shift = 0
            case "K": shift = 10
            case "M": shift = 20
            case "G": shift = 30
            case "T": shift = 40
            case "P": shift = 50
            case "E": shift = 60
            default: return nil
            }
            s = s.dropLast()
        }
        guard !s.isEmpty else { return nil }
        if s.hasPrefix("0x") || s.hasPrefix("0X") {
            guard let v = UInt64(s.dropFirst(2), radix: 16) else { return nil }
            let (r, o) = v.multipliedReportingOverflow(by: 1 << UInt64(shift))
            return o ? nil : r
        }
        let pieces = s.split(separator: ".", omittingEmptySubsequences: false)
        guard pieces.count <= 2, let whole = UInt64(pieces[0].isEmpty ? "0" : pieces[0]) else { return nil }
        let (w, o) = whole.multipliedReportingOverflow(by: 1 << UInt64(shift))
        guard !o else { return nil }
        guard pieces.count == 2 else { return pieces[0].isEmpty ? nil : w }
        let fracDigits = pieces[1]
        guard !fracDigits.isEmpty, fracDigits.count <= 9, fracDigits.allSatisfy(\.isNumber),
              let frac = UInt64(fracDigits), shift > 0 else { return nil }
        var denom: UInt64 = 1
        for _ in 0..<fracDigits.count { denom *= 10 }
        let fracBytes = UInt64((Double(frac) / Double(denom)) * Double(UInt64(1) << UInt64(shift)))
        let (t, o2) = w.addingReportingOverflow(fracBytes)
        return o2 ? nil : t
    }

    /// Parses `-smp [cpus=]n[,maxcpus=m,sockets=s,dies=d,cores=c,threads=t]` into (cpus, maxcpus).
    /// When only topology is given, cpus = sockets * dies * cores * threads, as QEMU computes it.
    public static func smp(_ text: String) throws(ConfigurationError) -> (cpus: Int, maxCPUs: Int) {
        var cpus: Int?
        var maxCPUs: Int?
        var topology: [String: Int] = [:]
        for (i, part) in text.split(separator: ",", omittingEmptySubsequences: false).enumerated() {
            let kv = part.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false).map(String.init)
            if kv.count == 1 && i == 0 {
                guard let n = Int(kv[0]) else { throw ConfigurationError("-smp: invalid CPU count '\(kv[0])'") }
                cpus = n
                continue
            }
            guard kv.count == 2, let n = Int(kv[1]) else {
                throw ConfigurationError("-smp: invalid option '\(part)'")
            }
            switch kv[0] {
            case "cpus": cpus = n
            case "maxcpus": maxCPUs = n
            case "sockets", "dies", "clusters", "cores", "threads", "books", "drawers": topology[kv[0]] = n
            default: throw ConfigurationError("-smp: unknown option '\(kv[0])'")
            }
        }
        // Every given value must be positive (QEMU 7.2 `machine_parse_smp_config()` warns that
        // zero is deprecated, QEMU 9.0 refuses it; negative values never parse there). The
        // topology's product saturates instead of overflowing: the range checks below refuse it.
        for (key, value) in [("cpus", cpus), ("maxcpus", maxCPUs)] + topology.sorted(by: { $0.key < $1.key }).map({ ($0.key, Optional($0.value)) }) {
            if let value, value <= 0 {
                throw ConfigurationError("-smp: \(key)=\(value): CPU topology parameters must be greater than zero")
            }
        }
        let product = topology.values.reduce(1) { p, v in
            let (r, o) = p.multipliedReportingOverflow(by: v)
            return o ? Int.max : r
        }
        let n = cpus ?? (topology.isEmpty ? 1 : product)
        let m = maxCPUs ?? n
        guard (1...255).contains(n) else { throw ConfigurationError("-smp: CPU count \(n) out of range 1..255") }
        guard m >= n, m <= 255 else { throw ConfigurationError("-smp: maxcpus \(m) must be in \(n)..255") }
        if !topology.isEmpty && product < m {
            throw ConfigurationError("-smp: topology \(product) CPUs is smaller than maxcpus \(m)")
        }
        return (n, m)
    }

    /// Splits a QEMU option list `a=b,c=d` (`,,` is a literal comma) into ordered pairs; a
    /// leading item without `=` is returned under `impliedKey`.
    public static func keyValues(_ text: String, impliedKey: String) -> [(key: String, value: String)] {
        var items: [String] = []
        var current = ""
        var chars = Array(text)[...]
        while let c = chars.popFirst() {
            if c == "," {
                if chars.first == "," {
                    current.append(",")
                    chars.removeFirst()
                } else {
                    items.append(current)
                    current = ""
                }
            } else {
                current.append(c)
            }
        }
        items.append(current)
        var result: [(String, String)] = []
        for (i, item) in items.enumerated() {
            if let eq = item.firstIndex(of: "=") {
                result.append((String(item[..<eq]), String(item[item.index(after: eq)...])))
            } else if i == 0 {
                result.append((impliedKey, item))
            } else {
                // QEMU treats a bare "flag" as flag=on
                result.append((item, "on"))
            }
        }
        return result
    }

    /// Parses an integer the way QEMU's property parser does: decimal, 0x hex, or 0 octal.
    public static func integer(_ text: String) -> UInt64? {
        if text.hasPrefix("0x") || text.hasPrefix("0X") { return UInt64(text.dropFirst(2), radix: 16) }
        if text.count > 1 && text.hasPrefix("0") { return UInt64(text.dropFirst(), radix: 8) }
        return UInt64(text)
    }

    /// Parses `-drive` (raw images; `if=none` for `-device virtio-blk-pci,drive=ID`, `if=virtio`
    /// for one with the device implied). QEMU's default `if=ide` has no IDE controller here.
    public static func drive(_ text: String, index: Int) throws(ConfigurationError) -> DriveSpec {
        var file: String?, id = "virtio\(index)", interface = DriveSpec.Interface.none, readOnly = false
        var sawInterface = false
        for (k, v) in keyValues(text, impliedKey: "file") {
            switch k {
            case "file": file = v
            case "id": id = v
            case "if":
                sawInterface = true
                switch v {
                case "none": interface = .none
                case "virtio": interface = .virtio
                default: throw ConfigurationError("-drive: if=\(v) is not supported (none, virtio)")
                }
            case "format":
                guard v == "raw" else { throw ConfigurationError("-drive: format=\(v) is not supported (raw)") }
            case "readonly":
                switch v {
                case "on", "yes", "true": readOnly = true
                case "off", "no", "false": readOnly = false
                default: throw ConfigurationError("-drive: readonly=\(v) must be on or off")
                }
            case "cache", "aio", "discard", "detect-zeroes", "media", "snapshot": break
            default: throw ConfigurationError("-drive: unsupported property '\(k)'")
            }
        }
        guard let file, !file.isEmpty else { throw ConfigurationError("-drive: missing file=PATH") }
        guard sawInterface else {
            throw ConfigurationError("-drive: if=ide (QEMU's default) is not supported; use if=virtio or if=none with -device virtio-blk-pci")
        }
        return DriveSpec(id: id, file: file, interface: interface, readOnly: readOnly)
    }

    /// Parses a monitor's socket: `unix:PATH` or `tcp:HOST:PORT` with `server=on` (or QEMU's
    /// older bare `server`) and `wait=off`/`nowait`. QEMU: qemu_chr_parse_compat() for `-qmp`.
    public static func monitorSocket(_ text: String, option: String) throws(ConfigurationError) -> MonitorSocketSpec {
        let items = keyValues(text, impliedKey: "address")
        guard let spec = items.first(where: { $0.key == "address" })?.value else {
            throw ConfigurationError("\(option) \(text): missing unix:PATH or tcp:HOST:PORT")
        }
        var server = false, wait = true
        for (k, v) in items where k != "address" {
            switch (k, v) {
            case ("server", "on"), ("server", "yes"), ("server", "true"): server = true
            case ("server", "off"): server = false
            case ("wait", "on"): wait = true
            case ("wait", "off"), ("nowait", "on"): wait = false
            default: throw ConfigurationError("\(option) \(text): unsupported option '\(k)=\(v)' (server=on, wait=on|off)")
            }
        }
        guard server else { throw ConfigurationError("\(option) \(text): only server mode is supported (add server=on,wait=off)") }
        let address: SocketAddress
        if spec.hasPrefix("unix:"), spec.count > 5 {
            address = .unix(String(spec.dropFirst(5)))
        } else if spec.hasPrefix("tcp:") {
            let hostPort = spec.dropFirst(4)
            guard let colon = hostPort.lastIndex(of: ":"), let port = UInt16(hostPort[hostPort.index(after: colon)...]) else {
                throw ConfigurationError("\(option) \(text): expected tcp:HOST:PORT")
            }
            let host = String(hostPort[..<colon])
            address = .tcp(host: host.isEmpty ? "127.0.0.1" : host, port: port)
        } else {
            throw ConfigurationError("\(option) \(text): '\(spec)' is not a supported monitor socket (unix:PATH, tcp:HOST:PORT)")
        }
        return MonitorSocketSpec(address: address, wait: wait)
    }
}
