import QMP

/// A QMP session (the protocol as a monitor client meets it) fed a hostile byte stream in
/// chunks: arbitrary bytes, partial JSON across chunks, deep nesting, huge numbers, long
/// strings, invalid UTF-8, and well-formed requests built from a generated value and written
/// out in many styles (`JSONGenerator`), over a small command table: `ping`, `echo` (typed
/// arguments, returns `value` or `text`), `x-oob-ping` (out-of-band), `fail` (DeviceNotFound)
/// and `query-fuzz` (numbers at the edges).
///
/// Input: ops until the input ends, each `u8` kind then operands (see `run`).
///
/// Checks, for every reply (paired with the complete value or oversized input that caused it,
/// found by a `JSONStreamer` fed the same chunks):
/// - it is one line, the project's parser reads its text back, and the value read equals the
///   reply (object members in any order, non-finite numbers as `null`);
/// - it is an object with `return` or `error` and at most `id`; an error is `{class, desc}`
///   with a QEMU error class and a description; at most 8 bytes per input byte plus 512;
/// - `id` is echoed exactly when the request was an object with one, and only then;
/// - negotiation: nothing but `qmp_capabilities` succeeds before it, it succeeds once, the
///   session agrees; `exec-oob` succeeds only when OOB was enabled, for the OOB command;
///   `echo` returns its argument;
/// - a generated request parses to the value it was written from, and when the stream took
///   it whole, its reply is the one expected.
func fuzzQMP(_ data: [UInt8]) throws(FuzzFailure) {
    var run = QMPFuzzRun()
    try run.run(data)
}

struct QMPFuzzRun {
    static let name = FuzzTarget.qmp.rawValue
    static let maxOps = 256
    static let maxMessageBytes = 4096
    /// Bytes generated per run (deep nesting, long numbers): keeps each run cheap.
    static let generatedBudget = 32 << 10
    static let errorClasses: Set<String> = ["GenericError", "CommandNotFound", "DeviceNotActive", "DeviceNotFound", "KVMMissingCap"]

    static let commands: [QMPCommand] = [
        QMPCommand("ping") { _ in .object([]) },
        QMPCommand("echo", arguments: [QMPArgument("text", .string, required: true), QMPArgument("n", .int),
                                       QMPArgument("flag", .bool), QMPArgument("tags", .stringList), QMPArgument("value", .any)]) { args in
            args["value"] ?? args["text"] ?? .null
        },
        QMPCommand("x-oob-ping", allowOOB: true) { _ in .object([]) },
        QMPCommand("fail") { _ throws(QMPError) in throw QMPError(.deviceNotFound, "Device 'fuzz' not found") },
        QMPCommand("query-fuzz") { _ in
            .object([("max", .uint(UInt64.max)), ("min", .int(Int64.min)), ("tiny", .double(.leastNonzeroMagnitude)),
                     ("inf", .double(.infinity)), ("text", .string("\u{1}\"\\\u{2028}\u{10FFFF}"))])
        },
    ]

    var session = QMPSession(commands: commands, maxMessageBytes: maxMessageBytes)
    var streamer = JSONStreamer(maxValueBytes: maxMessageBytes)
    var negotiated = false, oob = false
    var generated = 0
    /// Requests written out by the run, with the value each must parse to.
    var expected: [[UInt8]: JSONValue] = [:]
    /// What the run saw (for the seed tests): replies by kind, generated requests answered
    /// whole, the longest reply.
    var returns = 0, errors = 0, generatedAnswered = 0, longestReply = 0

    mutating func run(_ data: [UInt8]) throws(FuzzFailure) {
        var input = FuzzInput(data)
        for _ in 0..<Self.maxOps where !input.isEmpty {
            switch input.u8() % 6 {
            case 0:     // a short chunk of anything
                try feed(input.shortBytes())
            case 1:     // a long chunk of anything
                try feed(input.bytes(Int(input.u16() % 0x2000)))
            case 2:     // a request built from a generated value, in chunks
                try request(&input)
            case 3:     // deep nesting: arrays or objects, closed or not, as a request or bare
                let depth = Int(input.u16() % 1200), kind = input.u8()
                guard budget(4 * depth + 64) else { continue }
                let open = kind & 1 == 0 ? "[" : "{\"a\":", close = kind & 1 == 0 ? "]" : "}"
                let inner = String(repeating: open, count: depth) + "1" + String(repeating: close, count: kind & 2 == 0 ? depth : depth / 2)
                let text = kind & 4 == 0 ? inner : "{\"execute\":\"echo\",\"arguments\":{\"text\":\"t\",\"value\":\(inner)},\"id\":\(inner)}"
                try feed(Array(text.utf8))
            case 4:     // a huge number
                let count = Int(input.u16() % 0x4000), digit = UInt8(ascii: "0") + input.u8() % 10
                let affix = input.u8()
                guard budget(count + 64) else { continue }
                let prefix = ["", "-", "0.", "-0.", "1e", "1E-"][Int(affix % 6)], suffix = ["", "e999", "e-999", ".5", "E+1", "}"][Int(affix / 6 % 6)]
                let number = prefix + String(repeating: Character(UnicodeScalar(digit)), count: count) + suffix
                let text = affix & 0x80 == 0 ? number + " " : "{\"execute\":\"echo\",\"arguments\":{\"text\":\"t\",\"n\":\(number)},\"id\":\(number)}"
                try feed(Array(text.utf8))
            default:    // a long string (escapes, invalid UTF-8, an unterminated one)
                let count = Int(input.u16() % 0x2000), piece = input.shortBytes(), close = input.bool()
                guard budget(count * max(piece.count, 1) + 64) else { continue }
                var bytes = Array("{\"execute\":\"echo\",\"arguments\":{\"text\":\"".utf8)
                for _ in 0..<count { bytes += piece }
                if close { bytes += Array("\"}}".utf8) }
                try feed(bytes)
            }
        }
    }

    private mutating func budget(_ n: Int) -> Bool {
        generated += n
        return generated <= Self.generatedBudget
    }

    /// A request whose text the run wrote: `echo` of a generated value (or another command),
    /// with a generated `id` or none, members in a chosen order, in a chosen style, fed in up
    /// to four chunks.
    private mutating func request(_ input: inout FuzzInput) throws(FuzzFailure) {
        let what = input.u8()
        let value = JSONGenerator.value(&input)
        let id: JSONValue? = what & 0x10 != 0 ? JSONGenerator.value(&input, maxDepth: 2) : nil
        let style = JSONGenerator.Style(input.u8())
        var members: [(String, JSONValue)]
        switch what % 8 {
        case 0: members = [("execute", "ping")]
        case 1: members = [("execute", "qmp_capabilities"), ("arguments", .object([("enable", .array(what & 0x20 != 0 ? ["oob"] : []))]))]
        case 2: members = [("exec-oob", "x-oob-ping")]
        case 3: members = [("execute", "fail")]
        case 4: members = [("execute", "query-fuzz")]
        case 5: members = [("execute", "nope")]
        default:
            members = [("execute", "echo"), ("arguments", .object([("text", .string(JSONGenerator.string(&input))), ("value", value)]))]
        }
        if let id { members.append(("id", id)) }
        if what & 0x40 != 0 { members.reverse() }
        let request = JSONValue.object(members)
        let bytes = Array(JSONGenerator.render(request, style, space: &input).utf8)
        guard budget(bytes.count) else { return }
        // The parser reads the text back as the value it was written from.
        switch Result(catching: { () throws(JSONParseError) in try JSONParser.parse(bytes) }) {
        case .success(let parsed):
            try require(parsed == request, Self.name,
                        "\(String(decoding: bytes.prefix(300), as: UTF8.self)) parsed as \(parsed.serialized.prefix(300))")
        case .failure(let error):
            throw FuzzFailure(Self.name, "well-formed JSON refused (\(error)): \(String(decoding: bytes.prefix(300), as: UTF8.self))")
        }
        expected[bytes] = request
        var cuts = (0..<input.below(4)).map { _ in Int(input.u16()) % (bytes.count + 1) }
        cuts = ([0] + cuts.sorted() + [bytes.count])
        for i in 0..<(cuts.count - 1) where cuts[i] < cuts[i + 1] { try feed(Array(bytes[cuts[i]..<cuts[i + 1]])) }
    }

    /// Feeds one chunk to the session and checks each reply against what caused it.
    private mutating func feed(_ chunk: [UInt8]) throws(FuzzFailure) {
        guard !chunk.isEmpty else { return }
        let replies = session.receive(Bytes(chunk))
        let items = streamer.feed(Bytes(chunk))
        try require(replies.count == items.count, Self.name, "\(items.count) complete inputs got \(replies.count) replies")
        for (item, reply) in zip(items, replies) { try check(reply, for: item) }
        try require(session.negotiated == negotiated, Self.name,
                    "the session says negotiated=\(session.negotiated), its replies say \(negotiated)")
    }

    private mutating func check(_ reply: JSONValue, for item: JSONStreamer.Item) throws(FuzzFailure) {
        let text = reply.serialized
        longestReply = max(longestReply, text.utf8.count)
        if reply["return"] != nil { returns += 1 } else { errors += 1 }
        try require(!text.utf8.contains(0x0a) && !text.utf8.contains(0x0d), Self.name, "a reply spans lines: \(text.prefix(200))")
        let raw: [UInt8]
        if case .value(let bytes) = item { raw = bytes } else { raw = [] }
        try require(text.utf8.count <= 8 * raw.count + 512, Self.name, "a \(text.utf8.count)-byte reply to \(raw.count) bytes")
        switch Result(catching: { () throws(JSONParseError) in try JSONParser.parse(text) }) {
        case .success(let back):
            try require(back.sameIgnoringOrder(reply.normalized), Self.name, "the reply reads back differently: \(text.prefix(300))")
        case .failure(let error):
            throw FuzzFailure(Self.name, "a reply is not JSON the parser reads (\(error)): \(text.prefix(300))")
        }
        guard case .object(let members) = reply else { throw FuzzFailure(Self.name, "a reply is not an object: \(text.prefix(200))") }
        let keys = members.map(\.0)
        try require(Set(keys).count == keys.count && Set(keys).isSubset(of: ["return", "error", "id"])
                    && keys.filter({ $0 == "return" || $0 == "error" }).count == 1, Self.name, "reply members \(keys)")
        if let error = reply["error"] {
            guard case .object(let e) = error, e.count == 2, let cls = error["class"]?.string, let desc = error["desc"]?.string else {
                throw FuzzFailure(Self.name, "an error is not {class, desc}: \(text.prefix(200))")
            }
            try require(Self.errorClasses.contains(cls) && !desc.isEmpty, Self.name, "error class \(cls), desc '\(desc)'")
        }

        // What the request was, read independently of the session.
        let request = raw.isEmpty ? nil : try? JSONParser.parse(raw)
        let requestID: JSONValue? = if case .some(.object) = request { request?["id"] } else { nil }
        try require(reply["id"]?.normalized == requestID?.normalized, Self.name,
                    "id \(requestID?.serialized ?? "none") echoed as \(reply["id"]?.serialized ?? "none")")
        let oobKey = request?["exec-oob"]?.string
        let name = request?["execute"]?.string ?? oobKey
        if reply["return"] != nil {
            if name == "qmp_capabilities" && oobKey == nil {
                try require(!negotiated, Self.name, "qmp_capabilities succeeded twice")
                negotiated = true
                oob = request?["arguments"]?["enable"] == ["oob"]
            } else {
                try require(negotiated, Self.name, "\(name ?? "?") succeeded before negotiation")
            }
            if oobKey != nil { try require(oob && name == "x-oob-ping", Self.name, "exec-oob of \(name ?? "?") succeeded (oob \(oob))") }
            if name == "echo" {
                let want = request?["arguments"]?["value"] ?? request?["arguments"]?["text"]
                try require(reply["return"] == want, Self.name, "echo returned \(reply["return"]?.serialized.prefix(200) ?? "")")
            }
        }
        // A generated request the stream took whole gets the reply it must.
        if let sent = expected[raw] {
            let body: (String, JSONValue)?
            let wasNegotiated = negotiated && !(name == "qmp_capabilities" && reply["return"] != nil)
            switch name {
            case "qmp_capabilities": body = wasNegotiated ? ("error", "CommandNotFound") : ("return", .object([]))
            // exec-oob is an unexpected member until OOB is enabled, negotiated or not.
            case "x-oob-ping": body = oob ? ("return", .object([])) : ("error", "GenericError")
            case _ where !wasNegotiated: body = ("error", "CommandNotFound")
            case "ping": body = ("return", .object([]))
            case "echo": body = ("return", sent["arguments"]?["value"] ?? .null)
            case "fail": body = ("error", "DeviceNotFound")
            case "nope": body = ("error", "CommandNotFound")
            default: body = nil
            }
            generatedAnswered += 1
            if let (key, want) = body {
                let got = key == "error" ? reply["error"]?["class"] : reply[key]
                try require(got == want && reply["id"] == sent["id"], Self.name,
                            "\(String(decoding: raw.prefix(200), as: UTF8.self)) got \(text.prefix(300))")
            }
        }
    }
}

/// The chunk as a `Sequence` whose iterator is plain code here. `QMPSession.receive` and
/// `JSONStreamer.feed` are generic and not inlinable, so from this module they run
/// unspecialized: iterating an `Array` there goes through its subscript's read coroutine,
/// which allocates for every byte (under AddressSanitizer, with a stack trace each: 12 µs a
/// byte, most of the run). QMPServer, in the same module, gets the specialized code.
private struct Bytes: Sequence {
    let bytes: [UInt8]
    init(_ bytes: [UInt8]) { self.bytes = bytes }

    struct Iterator: IteratorProtocol {
        let bytes: [UInt8]
        var index = 0
        mutating func next() -> UInt8? {
            guard index < bytes.count else { return nil }
            defer { index += 1 }
            return bytes[index]
        }
    }

    func makeIterator() -> Iterator { Iterator(bytes: bytes) }
}
