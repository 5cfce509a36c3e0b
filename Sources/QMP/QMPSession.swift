/// One QMP connection's protocol, independent of its transport: the greeting, capabilities
/// negotiation, request checking and dispatch, and event delivery once negotiated. The
/// transport feeds received bytes and sends back what this returns.
/// QEMU: monitor/qmp.c (monitor_qmp_dispatch, handle_qmp_command) + qapi/qmp-dispatch.c.
public struct QMPSession {
    /// What the server offers in the greeting.
    /// QEMU: the members `qmp_greeting()` fills in.
    public struct Greeting: Sendable {
        /// The `qemu` version announced: QEMU's (7.2.0 by default), the version whose
        /// protocol this server speaks, so clients pick the right dialect.
        /// QEMU: `VersionInfo.qemu` (QEMU_VERSION_MAJOR and so on).
        public var major = 7, minor = 2, micro = 0
        /// The `package` string: who built it. QEMU: QEMU_PKGVERSION (e.g. Debian's
        /// package version).
        public var package = "swift-vmm"
        /// Offer out-of-band execution (QEMU offers it on socket monitors).
        public var offerOOB = true
        /// The defaults above; set members to change them.
        public init() {}
    }

    /// What this session announces.
    public let greeting: Greeting
    private let commands: [String: QMPCommand]
    private var streamer: JSONStreamer
    /// Set by qmp_capabilities. QEMU: mon->commands != &qmp_cap_negotiation_commands.
    public private(set) var negotiated = false
    /// Whether the client enabled out-of-band execution in `qmp_capabilities`, so
    /// `exec-oob` is accepted. QEMU: `qmp_oob_enabled()`.
    public private(set) var oobEnabled = false

    /// A session offering `commands` (`qmp_capabilities` is built in), refusing messages
    /// longer than `maxMessageBytes` with an error reply. QEMU: `monitor_init_qmp()`.
    public init(commands: [QMPCommand], greeting: Greeting = Greeting(), maxMessageBytes: Int = 1 << 20) {
        self.greeting = greeting
        var table: [String: QMPCommand] = [:]
        for c in commands { table[c.name] = c }
        self.commands = table
        streamer = JSONStreamer(maxValueBytes: maxMessageBytes)
    }

    /// The first line the server sends. QEMU: qmp_greeting().
    public var greetingMessage: JSONValue {
        let version: JSONValue = .object([
            ("qemu", .object([("major", .int(Int64(greeting.major))), ("minor", .int(Int64(greeting.minor))),
                              ("micro", .int(Int64(greeting.micro)))])),
            ("package", .string(greeting.package)),
        ])
        return .object([("QMP", .object([("version", version),
                                         ("capabilities", .array(greeting.offerOOB ? ["oob"] : []))]))])
    }

    /// Feeds received bytes; returns the replies, in order.
    public mutating func receive(_ bytes: some Sequence<UInt8>) -> [JSONValue] {
        var replies: [JSONValue] = []
        for item in streamer.feed(bytes) {
            switch item {
            case .tooLarge:
                replies.append(.object([("error", QMPError("JSON parse error, message too large").json)]))
            case .value(let raw):
                do {
                    replies.append(handle(try JSONParser.parse(raw)))
                } catch {
                    replies.append(.object([("error", QMPError("JSON parse error, \(error.description)").json)]))
                }
            }
        }
        return replies
    }

    /// One request → one reply (with the request's `id` echoed).
    mutating func handle(_ request: JSONValue) -> JSONValue {
        let id = request["id"]
        func reply(_ body: (String, JSONValue)) -> JSONValue {
            .object([body] + (id.map { [("id", $0)] } ?? []))
        }
        do {
            return reply(("return", try dispatch(request)))
        } catch {
            var e = error
            // Before negotiation every other command is "not found"; QEMU explains why.
            if !negotiated, e.errorClass == .commandNotFound {
                e.desc = "Expecting capabilities negotiation with 'qmp_capabilities'"
            }
            return reply(("error", e.json))
        }
    }

    private mutating func dispatch(_ request: JSONValue) throws(QMPError) -> JSONValue {
        guard case .object(let members) = request else { throw QMPError("QMP input must be a JSON object") }
        var execKey: String?
        for (key, value) in members {
            switch key {
            case "exec-oob" where oobEnabled:  // only once OOB is negotiated
                fallthrough
            case "execute":
                guard value.string != nil else { throw QMPError("QMP input member '\(key)' must be a string") }
                if let other = execKey { throw QMPError("QMP input member '\(key)' clashes with '\(other)'") }
                execKey = key
            case "arguments":
                guard case .object = value else { throw QMPError("QMP input member 'arguments' must be an object") }
            case "id":
                continue
            default:
                throw QMPError("QMP input member '\(key)' is unexpected")
            }
        }
        guard let execKey, let name = request[execKey]?.string else { throw QMPError("QMP input lacks member 'execute'") }
        let arguments = request["arguments"] ?? .object([])
        if name == "qmp_capabilities" {
            return try capabilities(arguments)
        }
        guard negotiated, let command = commands[name] else {
            throw QMPError(.commandNotFound, "The command \(name) has not been found")
        }
        if execKey == "exec-oob" && !command.allowOOB {
            throw QMPError("The command \(name) does not support OOB")
        }
        try command.validate(arguments)
        return try command.handler(arguments)
    }

    /// qmp_capabilities [enable: ["oob"]]. QEMU: qmp_qmp_capabilities().
    private mutating func capabilities(_ arguments: JSONValue) throws(QMPError) -> JSONValue {
        guard !negotiated else {
            throw QMPError(.commandNotFound, "Capabilities negotiation is already complete, command ignored")
        }
        try QMPCommand("qmp_capabilities", arguments: [QMPArgument("enable", .stringList)]) { _ in .null }.validate(arguments)
        var oob = false
        if case .array(let caps) = arguments["enable"] ?? .array([]) {
            for cap in caps {
                guard cap.string == "oob" else {
                    throw QMPError("Parameter 'enable' does not accept value '\(cap.string ?? "")'")
                }
                guard greeting.offerOOB else { throw QMPError("Capability 'oob' not available") }
                oob = true
            }
        }
        negotiated = true
        oobEnabled = oob
        return .object([])
    }

    /// An event message, QEMU's shape: timestamp, event, data (when any).
    /// QEMU: qapi_event_emit() → monitor_qapi_event_emit().
    public static func event(_ name: String, data: JSONValue? = nil, seconds: Int64, microseconds: Int64) -> JSONValue {
        var members: [(String, JSONValue)] = [
            ("timestamp", .object([("seconds", .int(seconds)), ("microseconds", .int(microseconds))])),
            ("event", .string(name)),
        ]
        if let data { members.append(("data", data)) }
        return .object(members)
    }
}
