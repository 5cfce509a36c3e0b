import QMP

/// JSON values built from fuzzer bytes, and written out as text in the many ways a client may
/// write them (escaped or raw non-ASCII, surrogate pairs, `\/`, single-quoted strings — the
/// parser's QEMU extension —, short or `\u00XX` control escapes, whitespace anywhere between
/// tokens). The `qmp` target parses the text and expects the value back exactly: an oracle
/// for the parser that does not depend on it.
enum JSONGenerator {
    /// How a value is written out (bit set from one byte).
    struct Style {
        var escapeNonASCII: Bool, escapeSlash: Bool, singleQuotes: Bool, upperHex: Bool
        var whitespace: Bool, escapePrintable: Bool, longControlEscapes: Bool

        init(_ b: UInt8) {
            escapeNonASCII = b & 1 != 0
            escapeSlash = b & 2 != 0
            singleQuotes = b & 4 != 0
            upperHex = b & 8 != 0
            whitespace = b & 16 != 0
            escapePrintable = b & 32 != 0
            longControlEscapes = b & 64 != 0
        }
    }

    /// A value from the input, nested at most `maxDepth` deep.
    static func value(_ input: inout FuzzInput, depth: Int = 0, maxDepth: Int = 5) -> JSONValue {
        switch input.u8() % (depth >= maxDepth ? 6 : 8) {
        case 0: return .null
        case 1: return .bool(input.bool())
        case 2: return .int(Int64(bitPattern: input.u64()))
        case 3: return .uint(input.u64() | 1 << 63)
        case 4:
            let d = Double(bitPattern: input.u64())
            return .double(d.isFinite ? d : Double(input.u16()) / 8)
        case 5: return .string(string(&input))
        case 6: return .array((0..<input.below(5)).map { _ in value(&input, depth: depth + 1, maxDepth: maxDepth) })
        default:
            var members: [(String, JSONValue)] = []
            for _ in 0..<input.below(5) {
                let key = string(&input)
                guard !members.contains(where: { $0.0 == key }) else { continue }
                members.append((key, value(&input, depth: depth + 1, maxDepth: maxDepth)))
            }
            return .object(members)
        }
    }

    /// A string of up to 11 scalars of every kind JSON must carry (never NUL: QMP refuses
    /// `\u0000`, as QEMU's parser does).
    static func string(_ input: inout FuzzInput) -> String {
        var s = String.UnicodeScalarView()
        for _ in 0..<input.below(12) {
            let v: UInt32
            switch input.u8() % 6 {
            case 0: v = 0x20 + UInt32(input.u8() % 95)
            case 1: v = 1 + UInt32(input.u8() % 0x1f)
            case 2: v = [0x22, 0x5c, 0x2f, 0x27, 0x7f][input.below(5)]
            case 3:
                let u = UInt32(input.u16())
                v = u == 0 ? 0x80 : (0xD800..<0xE000).contains(u) ? 0xFFFD : u
            case 4: v = 0x10000 + input.u32() % 0x100000
            default: v = [0x2028, 0x2029, 0xFEFF, 0xFFFF, 0x80, 0x7ff, 0x800, 0x10FFFF][input.below(8)]
            }
            if let scalar = Unicode.Scalar(v) { s.append(scalar) }
        }
        return String(s)
    }

    /// Writes `v` out in `style`; `space` supplies the whitespace between tokens.
    static func render(_ v: JSONValue, _ style: Style, space: inout FuzzInput) -> String {
        var out = ""
        write(v, style, &space, into: &out)
        return out
    }

    private static func ws(_ style: Style, _ space: inout FuzzInput, into out: inout String) {
        guard style.whitespace else { return }
        out += ["", " ", "\t", "\n", "\r\n", "  "][space.below(6)]
    }

    private static func write(_ v: JSONValue, _ style: Style, _ space: inout FuzzInput, into out: inout String) {
        switch v {
        case .null: out += "null"
        case .bool(let b): out += b ? "true" : "false"
        case .int(let i): out += String(i)
        case .uint(let u): out += String(u)
        case .double(let d): out += "\(d)"
        case .string(let s): quote(s, style, into: &out)
        case .array(let items):
            out += "["
            for (i, item) in items.enumerated() {
                if i > 0 { out += "," }
                ws(style, &space, into: &out)
                write(item, style, &space, into: &out)
                ws(style, &space, into: &out)
            }
            out += "]"
        case .object(let members):
            out += "{"
            for (i, (k, item)) in members.enumerated() {
                if i > 0 { out += "," }
                ws(style, &space, into: &out)
                quote(k, style, into: &out)
                ws(style, &space, into: &out)
                out += ":"
                ws(style, &space, into: &out)
                write(item, style, &space, into: &out)
                ws(style, &space, into: &out)
            }
            out += "}"
        }
    }

    private static func unit(_ u: UInt32, _ style: Style) -> String {
        let h = String(u, radix: 16, uppercase: style.upperHex)
        return "\\u" + String(repeating: "0", count: max(0, 4 - h.count)) + h
    }

    static func quote(_ s: String, _ style: Style, into out: inout String) {
        let q: Unicode.Scalar = style.singleQuotes ? "'" : "\""
        out.unicodeScalars.append(q)
        for u in s.unicodeScalars {
            switch u.value {
            case q.value: out += "\\" + String(q)
            case 0x5c: out += "\\\\"
            case 0x2f where style.escapeSlash: out += "\\/"
            case 0x08 where !style.longControlEscapes: out += "\\b"
            case 0x0c where !style.longControlEscapes: out += "\\f"
            case 0x0a where !style.longControlEscapes: out += "\\n"
            case 0x0d where !style.longControlEscapes: out += "\\r"
            case 0x09 where !style.longControlEscapes: out += "\\t"
            case 0..<0x20: out += unit(u.value, style)
            case 0x20..<0x80 where style.escapePrintable && u.value % 3 == 0: out += unit(u.value, style)
            case 0x80...0xFFFF where style.escapeNonASCII: out += unit(u.value, style)
            case 0x10000... where style.escapeNonASCII:
                let v = u.value - 0x10000
                out += unit(0xD800 + (v >> 10), style) + unit(0xDC00 + (v & 0x3ff), style)
            default: out.unicodeScalars.append(u)
            }
        }
        out.unicodeScalars.append(q)
    }
}

extension JSONValue {
    /// As the serializer writes it: non-finite numbers become `null` (documented on
    /// `JSONValue.double`).
    var normalized: JSONValue {
        switch self {
        case .double(let d) where !d.isFinite: return .null
        case .array(let items): return .array(items.map(\.normalized))
        case .object(let members): return .object(members.map { ($0.0, $0.1.normalized) })
        default: return self
        }
    }

    /// Equal up to the order of object members (the serializer reorders them as QEMU's QDict
    /// prints; keys are unique in parsed values).
    func sameIgnoringOrder(_ other: JSONValue) -> Bool {
        switch (self, other) {
        case (.array(let a), .array(let b)):
            return a.count == b.count && zip(a, b).allSatisfy { $0.sameIgnoringOrder($1) }
        case (.object(let a), .object(let b)):
            return a.count == b.count && a.allSatisfy { m in b.contains { $0.0 == m.0 && $0.1.sameIgnoringOrder(m.1) } }
        default:
            return self == other
        }
    }
}
