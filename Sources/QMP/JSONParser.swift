/// Why a QMP input is not acceptable JSON. QEMU answers each with a GenericError
/// ("JSON parse error, …").
///
/// `package`: the parser is `QMPSession`'s business; clients get parsed `JSONValue`s.
package struct JSONParseError: Error, Equatable, CustomStringConvertible {
    /// What is wrong, as the reply's description shows it after "JSON parse error, ".
    package var description: String
    init(_ d: String) { description = d }
}

/// A strict JSON parser over UTF-8 bytes with hard limits, so a hostile client can neither
/// nest without bound nor make it allocate without bound. QEMU: qobject/json-parser.c (which
/// also accepts single-quoted strings, an extension kept here).
package struct JSONParser {
    /// Deepest nesting accepted. QEMU: MAX_NESTING 1024 in json-streamer.c.
    package static let maxDepth = 1024

    private let bytes: [UInt8]
    private var at = 0

    /// Parses exactly one value (surrounding whitespace allowed). QEMU: `json_parser_parse()`.
    package static func parse(_ bytes: [UInt8]) throws(JSONParseError) -> JSONValue {
        var p = JSONParser(bytes: bytes)
        p.skipSpace()
        let v = try p.value(depth: 0)
        p.skipSpace()
        guard p.at == bytes.count else { throw JSONParseError("trailing characters after the value") }
        return v
    }

    /// Parses exactly one value from `text`'s UTF-8 (see the `[UInt8]` form).
    package static func parse(_ text: String) throws(JSONParseError) -> JSONValue { try parse(Array(text.utf8)) }

    private init(bytes: [UInt8]) { self.bytes = bytes }

    private mutating func skipSpace() {
        while at < bytes.count, [0x20, 0x09, 0x0a, 0x0d].contains(bytes[at]) { at += 1 }
    }

    private func peek() -> UInt8? { at < bytes.count ? bytes[at] : nil }

    private mutating func expect(_ literal: String) throws(JSONParseError) {
        let start = at
        for b in literal.utf8 {
            guard peek() == b else {
                // QEMU's lexer reports the whole word: "invalid keyword 'tru'".
                var end = start
                while end < bytes.count, bytes[end].isASCIILetterOrDigit { end += 1 }
                throw JSONParseError("invalid keyword '\(String(decoding: bytes[start..<max(end, start + 1)], as: UTF8.self))'")
            }
            at += 1
        }
        guard peek().map({ !$0.isASCIILetterOrDigit }) ?? true else {
            var end = at
            while end < bytes.count, bytes[end].isASCIILetterOrDigit { end += 1 }
            throw JSONParseError("invalid keyword '\(String(decoding: bytes[start..<end], as: UTF8.self))'")
        }
    }

    private mutating func value(depth: Int) throws(JSONParseError) -> JSONValue {
        guard depth < Self.maxDepth else { throw JSONParseError("nesting too deep") }
        guard let c = peek() else { throw JSONParseError("unexpected end of input") }
        switch c {
        case UInt8(ascii: "{"):
            at += 1
            var members: [(String, JSONValue)] = []
            skipSpace()
            if peek() == UInt8(ascii: "}") { at += 1; return .object(members) }
            while true {
                skipSpace()
                guard let q = peek(), q == UInt8(ascii: "\"") || q == UInt8(ascii: "'") else { throw JSONParseError("expected a member name") }
                let key = try string()
                skipSpace()
                guard peek() == UInt8(ascii: ":") else { throw JSONParseError("expected ':'") }
                at += 1
                skipSpace()
                let v = try value(depth: depth + 1)
                if let i = members.firstIndex(where: { $0.0 == key }) { members[i].1 = v } else { members.append((key, v)) }
                skipSpace()
                guard let sep = peek() else { throw JSONParseError("unexpected end of input") }
                at += 1
                if sep == UInt8(ascii: "}") { return .object(members) }
                guard sep == UInt8(ascii: ",") else { throw JSONParseError("expected ',' or '}'") }
            }
        case UInt8(ascii: "["):
            at += 1
            var items: [JSONValue] = []
            skipSpace()
            if peek() == UInt8(ascii: "]") { at += 1; return .array(items) }
            while true {
                skipSpace()
                items.append(try value(depth: depth + 1))
                skipSpace()
                guard let sep = peek() else { throw JSONParseError("unexpected end of input") }
                at += 1
                if sep == UInt8(ascii: "]") { return .array(items) }
                guard sep == UInt8(ascii: ",") else { throw JSONParseError("expected ',' or ']'") }
            }
        case UInt8(ascii: "\""), UInt8(ascii: "'"): return .string(try string())
        case UInt8(ascii: "t"): try expect("true"); return .bool(true)
        case UInt8(ascii: "f"): try expect("false"); return .bool(false)
        case UInt8(ascii: "n"): try expect("null"); return .null
        default: return try number()
        }
    }

    private mutating func string() throws(JSONParseError) -> String {
        let quote = bytes[at]
        at += 1
        var scalars = String.UnicodeScalarView()
        var raw: [UInt8] = []
        func flush() throws(JSONParseError) {
            guard !raw.isEmpty else { return }
            guard let s = String(validating: raw, as: UTF8.self) else { throw JSONParseError("invalid UTF-8 in a string") }
            scalars.append(contentsOf: s.unicodeScalars)
            raw.removeAll()
        }
        while true {
            guard let c = peek() else { throw JSONParseError("unterminated string") }
            at += 1
            if c == quote { break }
            guard c >= 0x20 else { throw JSONParseError("control character in a string") }
            guard c == UInt8(ascii: "\\") else { raw.append(c); continue }
            try flush()
            guard let e = peek() else { throw JSONParseError("unterminated escape") }
            at += 1
            switch e {
            case UInt8(ascii: "\""): scalars.append("\"")
            case UInt8(ascii: "'"): scalars.append("'")
            case UInt8(ascii: "\\"): scalars.append("\\")
            case UInt8(ascii: "/"): scalars.append("/")
            case UInt8(ascii: "b"): scalars.append("\u{08}")
            case UInt8(ascii: "f"): scalars.append("\u{0C}")
            case UInt8(ascii: "n"): scalars.append("\n")
            case UInt8(ascii: "r"): scalars.append("\r")
            case UInt8(ascii: "t"): scalars.append("\t")
            case UInt8(ascii: "u"):
                var unit = try hex4()
                if (0xD800..<0xDC00).contains(unit) {
                    // The escaped trailing surrogate follows at once (its hex digits right after
                    // the `u`: `expect` would take them for the rest of a keyword). QEMU: parse_string().
                    guard at + 1 < bytes.count, bytes[at] == UInt8(ascii: "\\"), bytes[at + 1] == UInt8(ascii: "u") else {
                        throw JSONParseError("invalid surrogate pair")
                    }
                    at += 2
                    let low = try hex4()
                    guard (0xDC00..<0xE000).contains(low) else { throw JSONParseError("invalid surrogate pair") }
                    unit = 0x10000 + ((unit - 0xD800) << 10) + (low - 0xDC00)
                }
                guard let scalar = Unicode.Scalar(unit), unit != 0 else { throw JSONParseError("invalid \\u escape") }
                scalars.append(scalar)
            default: throw JSONParseError("invalid escape")
            }
        }
        try flush()
        return String(scalars)
    }

    private mutating func hex4() throws(JSONParseError) -> UInt32 {
        var v: UInt32 = 0
        for _ in 0..<4 {
            guard let c = peek(), let d = Character(UnicodeScalar(c)).hexDigitValue else { throw JSONParseError("invalid \\u escape") }
            v = v << 4 | UInt32(d)
            at += 1
        }
        return v
    }

    private mutating func number() throws(JSONParseError) -> JSONValue {
        let start = at
        if peek() == UInt8(ascii: "-") { at += 1 }
        var fraction = false
        while let c = peek(), (0x30...0x39).contains(c) || [UInt8(ascii: "."), UInt8(ascii: "e"), UInt8(ascii: "E"),
                                                             UInt8(ascii: "+"), UInt8(ascii: "-")].contains(c) {
            if !(0x30...0x39).contains(c) { fraction = true }
            at += 1
        }
        let text = String(decoding: bytes[start..<at], as: UTF8.self)
        guard at > start, text != "-" else { throw JSONParseError("invalid token") }
        if !fraction {
            if let v = Int64(text) { return .int(v) }
            if let v = UInt64(text) { return .uint(v) }
        }
        guard let d = Double(text) else { throw JSONParseError("invalid number '\(text)'") }
        return .double(d)
    }
}

extension UInt8 {
    fileprivate var isASCIILetterOrDigit: Bool {
        (0x30...0x39).contains(self) || (0x41...0x5a).contains(self) || (0x61...0x7a).contains(self)
    }
}
