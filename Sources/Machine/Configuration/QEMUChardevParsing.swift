import VMMSys

/// Where a `-serial` port's bytes go: nowhere (no port), a new backend, or an existing chardev.
public enum SerialTarget: Sendable, Equatable {
    /// `-serial none`: no port.
    case none
    /// A new chardev "serialN" with this backend.
    case backend(ChardevSpec.Backend)
    /// `chardev:ID`.
    case chardev(String)
}

extension QEMUValueParsing {
    /// Parses `-serial`: `stdio`, `mon:stdio`, `null`, `none`, `file:PATH`, `pipe:PATH`, `pty`,
    /// `chardev:ID`, `unix:PATH[,server=on][,wait=off]`, `tcp:HOST:PORT[,server=on][,wait=off]`.
    /// QEMU: serial_parse() → qemu_chr_new() → qemu_chr_parse_compat().
    public static func serialTarget(_ text: String) throws(ConfigurationError) -> SerialTarget {
        switch text {
        case "stdio", "mon:stdio": return .backend(.stdio)
        case "none": return .none
        case "null": return .backend(.null)
        case "pty": return .backend(.pty)
        default: break
        }
        func rest(_ prefix: String) -> String? { text.hasPrefix(prefix) ? String(text.dropFirst(prefix.count)) : nil }
        if let path = rest("file:") {
            guard !path.isEmpty else { throw ConfigurationError("-serial: file: needs a path") }
            return .backend(.file(path))
        }
        if let path = rest("pipe:") {
            guard !path.isEmpty else { throw ConfigurationError("-serial: pipe: needs a path") }
            return .backend(.pipe(path))
        }
        if let id = rest("chardev:") {
            guard !id.isEmpty else { throw ConfigurationError("-serial: chardev: needs a chardev id") }
            return .chardev(id)
        }
        if let spec = rest("unix:") {
            let kv = keyValues(spec, impliedKey: "path")
            return .backend(try socket(kv, context: "-serial \(text)"))
        }
        if let spec = rest("tcp:") {
            var kv = keyValues(spec, impliedKey: "address")
            let address = kv.first { $0.key == "address" }?.value ?? ""
            guard let colon = address.lastIndex(of: ":") else {
                throw ConfigurationError("-serial \(text): tcp: needs HOST:PORT")
            }
            kv.removeAll { $0.key == "address" }
            kv.append(("host", String(address[..<colon])))
            kv.append(("port", String(address[address.index(after: colon)...])))
            return .backend(try socket(kv, context: "-serial \(text)"))
        }
        throw ConfigurationError("-serial: unsupported backend '\(text)' (stdio, file:PATH, pipe:PATH, pty, unix:PATH, tcp:HOST:PORT, chardev:ID, null, none)")
    }

    /// Parses `-serial` as a new backend (nil for `none`); `chardev:ID` is refused here (see
    /// `serialTarget`).
    public static func serial(_ text: String) throws(ConfigurationError) -> ChardevSpec.Backend? {
        switch try serialTarget(text) {
        case .none: return nil
        case .backend(let b): return b
        case .chardev: throw ConfigurationError("-serial \(text): names an existing chardev, not a backend")
        }
    }

    /// Parses `-chardev BACKEND,id=ID[,...]`: null, stdio, file (path=, append=), pipe (path=),
    /// pty, socket (path= | host=,port=; server=, wait=). QEMU: qemu_chr_new_from_opts() and
    /// the backends' parse functions; errors in QEMU's words.
    public static func chardev(_ text: String) throws(ConfigurationError) -> ChardevSpec {
        let kv = keyValues(text, impliedKey: "backend")
        let backend = kv.first { $0.key == "backend" }?.value ?? ""
        let context = "-chardev \(text)"
        guard let id = kv.first(where: { $0.key == "id" })?.value, !id.isEmpty else {
            throw ConfigurationError("\(context): chardev: \"\(backend)\" missing id")
        }
        guard DeviceRegistry.isValidID(id) else { throw ConfigurationError("\(context): Parameter 'id' expects an identifier") }
        let common: Set<String> = ["backend", "id", "logfile", "logappend"]
        let allowed: Set<String>
        switch backend {
        case "stdio": allowed = ["signal"]
        case "null", "pty": allowed = []
        case "file": allowed = ["path", "append"]
        case "pipe": allowed = ["path"]
        case "socket": allowed = ["path", "host", "port", "server", "wait", "nodelay", "telnet", "reconnect", "tls-creds", "abstract", "tight", "ipv4", "to"]
        case "serial", "tty", "parallel", "parport", "ringbuf", "memory", "udp", "msmouse", "braille", "spicevmc", "spiceport",
             "vc", "wctablet", "testdev", "dbus", "qemu-vdagent":
            throw ConfigurationError("\(context): '\(backend)' is not a supported chardev backend (null, stdio, file, pipe, pty, socket)")
        default:
            throw ConfigurationError("\(context): '\(backend)' is not a valid char driver name")
        }
        for (k, v) in kv where !common.contains(k) && !allowed.contains(k) {
            if k == "mux" {
                if DeviceProperty.bool(v) == true { throw ConfigurationError("\(context): mux=on is not supported (one frontend per chardev)") }
                continue
            }
            throw ConfigurationError("\(context): Invalid parameter '\(k)'")
        }
        func value(_ key: String) -> String? { kv.last { $0.key == key }?.value }
        func flag(_ key: String, default d: Bool) throws(ConfigurationError) -> Bool {
            guard let v = value(key) else { return d }
            guard let b = DeviceProperty.bool(v) else { throw ConfigurationError("\(context): Parameter '\(key)' expects 'on' or 'off'") }
            return b
        }
        switch backend {
        case "stdio": return ChardevSpec(id: id, backend: .stdio)
        case "null": return ChardevSpec(id: id, backend: .null)
        case "pty": return ChardevSpec(id: id, backend: .pty)
        case "file":
            guard let path = value("path"), !path.isEmpty else { throw ConfigurationError("\(context): chardev: file: no filename given") }
            return ChardevSpec(id: id, backend: try flag("append", default: false) ? .appendFile(path) : .file(path))
        case "pipe":
            guard let path = value("path"), !path.isEmpty else { throw ConfigurationError("\(context): chardev: pipe: no filename given") }
            return ChardevSpec(id: id, backend: .pipe(path))
        default:
            return ChardevSpec(id: id, backend: try socket(kv, context: context))
        }
    }

    /// The socket options shared by `-chardev socket` and `-serial unix:/tcp:`.
    static func socket(_ kv: [(key: String, value: String)], context: String) throws(ConfigurationError) -> ChardevSpec.Backend {
        func value(_ key: String) -> String? { kv.last { $0.key == key }?.value }
        func flag(_ key: String, default d: Bool) throws(ConfigurationError) -> Bool {
            guard let v = value(key) else { return d }
            guard let b = DeviceProperty.bool(v) else { throw ConfigurationError("\(context): Parameter '\(key)' expects 'on' or 'off'") }
            return b
        }
        for (k, _) in kv where !["path", "host", "port", "server", "wait", "nodelay", "telnet", "reconnect", "tls-creds",
                                 "abstract", "tight", "ipv4", "to", "backend", "id", "logfile", "logappend"].contains(k) {
            throw ConfigurationError("\(context): Invalid parameter '\(k)'")
        }
        if try flag("telnet", default: false) { throw ConfigurationError("\(context): telnet=on is not supported") }
        if let r = value("reconnect"), r != "0" { throw ConfigurationError("\(context): reconnect= is not supported") }
        if value("tls-creds") != nil { throw ConfigurationError("\(context): tls-creds= is not supported") }
        if try flag("abstract", default: false) { throw ConfigurationError("\(context): abstract=on is not supported") }
        let server = try flag("server", default: false)
        let wait = try flag("wait", default: true)
        if value("wait") != nil && !server { throw ConfigurationError("\(context): 'wait' option is incompatible with socket in client connect mode") }
        let address: SocketAddress
        switch (value("path"), value("host"), value("port")) {
        case (let path?, nil, nil):
            guard !path.isEmpty else { throw ConfigurationError("\(context): chardev: socket: no path given") }
            address = .unix(path)
        case (nil, let host?, let port?):
            guard let p = UInt16(port) else { throw ConfigurationError("\(context): port '\(port)' is not a TCP port number") }
            guard host == "localhost" || isIPv4(host) else {
                throw ConfigurationError("\(context): host '\(host)' must be an IPv4 address (e.g. 127.0.0.1)")
            }
            address = .tcp(host: host, port: p)
        case (nil, _, nil), (nil, nil, _):
            throw ConfigurationError("\(context): chardev: socket: must specify either 'path' or 'host' and 'port'")
        default:
            throw ConfigurationError("\(context): chardev: socket: 'path' and 'host'/'port' are mutually exclusive")
        }
        return .socket(address: address, server: server, wait: server && wait)
    }

    static func isIPv4(_ s: String) -> Bool {
        let parts = s.split(separator: ".", omittingEmptySubsequences: false)
        return parts.count == 4 && parts.allSatisfy { !$0.isEmpty && $0.count <= 3 && UInt8($0) != nil }
    }

    /// Parses `-mon [chardev=]ID[,mode=readline|control][,pretty=on|off]`. QEMU: monitor_init_opts().
    public static func mon(_ text: String) throws(ConfigurationError) -> ChardevMonitorSpec {
        let kv = keyValues(text, impliedKey: "chardev")
        var chardev: String?, mode = ChardevMonitorSpec.Mode.readline, pretty = false
        for (k, v) in kv {
            switch k {
            case "chardev": chardev = v
            case "mode":
                switch v {
                case "readline": mode = .readline
                case "control": mode = .control
                default: throw ConfigurationError("-mon \(text): Parameter 'mode' does not accept value '\(v)'")
                }
            case "pretty":
                guard let b = DeviceProperty.bool(v) else { throw ConfigurationError("-mon \(text): Parameter 'pretty' expects 'on' or 'off'") }
                pretty = b
            case "id": break
            default: throw ConfigurationError("-mon \(text): Invalid parameter '\(k)'")
            }
        }
        guard let chardev, !chardev.isEmpty else { throw ConfigurationError("-mon \(text): Parameter 'chardev' is missing") }
        // QEMU 7.2: monitor_init() refuses pretty for the human monitor.
        if pretty && mode == .readline { throw ConfigurationError("-mon \(text): 'pretty' is not compatible with HMP monitors") }
        // Deliberate difference: QMP replies are never pretty-printed here.
        if pretty { throw ConfigurationError("-mon \(text): pretty-printed QMP is not supported (leave pretty off)") }
        return ChardevMonitorSpec(chardev: chardev, mode: mode, pretty: pretty)
    }
}
