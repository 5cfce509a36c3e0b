/// A JSON value as QMP exchanges it. Objects keep their members in order, so replies print
/// with QEMU's member order. Numbers keep integers exact (QMP's sizes and addresses are
/// 64-bit); only numbers with a fraction or exponent become `double`.
/// QEMU: `QObject` and its kinds (include/qapi/qmp/).
///
/// Build replies with literals: `["running": true, "status": "running"]` is an object with
/// those members in that order.
public enum JSONValue: Sendable, Equatable {
    /// `null`. QEMU: `QNull`.
    case null
    /// `true` or `false`. QEMU: `QBool`.
    case bool(Bool)
    /// An integer; the parser uses it for every integer that fits `Int64`.
    /// QEMU: `QNum` of kind `QNUM_I64`.
    case int(Int64)
    /// An integer; the parser uses it only above `Int64.max`. QEMU: `QNum` of kind `QNUM_U64`.
    case uint(UInt64)
    /// A number written with a fraction or an exponent. Non-finite values serialize as
    /// `null`. QEMU: `QNum` of kind `QNUM_DOUBLE`.
    case double(Double)
    /// A string. QEMU: `QString`.
    case string(String)
    /// An array. QEMU: `QList`.
    case array([JSONValue])
    /// An object, its members in order. QEMU: `QDict` (a hash table: see ``serialized`` for
    /// the order it prints in).
    case object([(String, JSONValue)])

    /// Structural equality; `int` and `uint` compare by value, and an integer never equals a
    /// `double`, as in QEMU's `qnum_is_equal()`. Objects compare member by member in order,
    /// where QEMU's `qdict_is_equal()` ignores order. QEMU: `qobject_is_equal()`.
    public static func == (a: JSONValue, b: JSONValue) -> Bool {
        switch (a, b) {
        case (.null, .null): return true
        case (.bool(let x), .bool(let y)): return x == y
        case (.string(let x), .string(let y)): return x == y
        case (.double(let x), .double(let y)): return x == y
        case (.array(let x), .array(let y)): return x == y
        case (.object(let x), .object(let y)):
            return x.count == y.count && zip(x, y).allSatisfy { $0.0 == $1.0 && $0.1 == $1.1 }
        default:
            if let x = a.integer, let y = b.integer { return x == y }
            return false
        }
    }

    /// The member `key` of an object.
    public subscript(key: String) -> JSONValue? {
        guard case .object(let members) = self else { return nil }
        return members.first { $0.0 == key }?.1
    }

    /// An integer value (int or uint within Int128), if this is one.
    public var integer: Int128? {
        switch self {
        case .int(let v): return Int128(v)
        case .uint(let v): return Int128(v)
        default: return nil
        }
    }

    /// The text, if this is a string. QEMU: `qobject_get_try_str()`.
    public var string: String? { if case .string(let s) = self { s } else { nil } }
    /// The truth value, if this is a boolean. QEMU: `qobject_to(QBool, …)`.
    public var bool: Bool? { if case .bool(let b) = self { b } else { nil } }

    /// Serializes the way QEMU's QMP output does: `{"a": 1, "b": [true, null]}`, with object
    /// members in the order QEMU's QDict iterates them (see `qdictOrder`), so a reply built
    /// with members in QEMU's insertion (schema) order prints byte for byte as QEMU prints it.
    public var serialized: String {
        var out = ""
        write(to: &out)
        return out
    }

    private func write(to out: inout String) {
        switch self {
        case .null: out += "null"
        case .bool(let b): out += b ? "true" : "false"
        case .int(let v): out += String(v)
        case .uint(let v): out += String(v)
        case .double(let v): out += v.isFinite ? "\(v)" : "null"
        case .string(let s): JSONValue.quote(s, into: &out)
        case .array(let items):
            out += "["
            for (i, v) in items.enumerated() {
                if i > 0 { out += ", " }
                v.write(to: &out)
            }
            out += "]"
        case .object(let members):
            out += "{"
            for (i, (k, v)) in JSONValue.qdictOrder(members).enumerated() {
                if i > 0 { out += ", " }
                JSONValue.quote(k, into: &out)
                out += ": "
                v.write(to: &out)
            }
            out += "}"
        }
    }

    /// QEMU's QDict is a 512-bucket hash table (tdb_hash of the key) whose buckets list the
    /// newest entry first; its JSON output walks buckets in order. This reorders members given
    /// in insertion order the same way. QEMU: qobject/qdict.c (tdb_hash, qdict_first/next).
    static func qdictOrder(_ members: [(String, JSONValue)]) -> [(String, JSONValue)] {
        func bucket(_ key: String) -> UInt32 {
            let bytes = Array(key.utf8)
            var value = 0x238F_13AF &* UInt32(truncatingIfNeeded: bytes.count)
            for (i, b) in bytes.enumerated() { value = value &+ (UInt32(b) << UInt32(i * 5 % 24)) }
            return (1_103_515_243 &* value &+ 12345) % 512
        }
        return members.enumerated()
            .map { (bucket: bucket($0.element.0), index: $0.offset, member: $0.element) }
            .sorted { $0.bucket != $1.bucket ? $0.bucket < $1.bucket : $0.index > $1.index }
            .map(\.member)
    }

    static func quote(_ s: String, into out: inout String) {
        out += "\""
        for u in s.unicodeScalars {
            switch u {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            case "\u{08}": out += "\\b"
            case "\u{0C}": out += "\\f"
            default:
                if u.value < 0x20 {
                    let hex = String(u.value, radix: 16)
                    out += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
                } else {
                    out.unicodeScalars.append(u)
                }
            }
        }
        out += "\""
    }
}

extension JSONValue: ExpressibleByStringLiteral, ExpressibleByIntegerLiteral, ExpressibleByBooleanLiteral,
                     ExpressibleByArrayLiteral, ExpressibleByDictionaryLiteral, ExpressibleByNilLiteral {
    /// `"text"` is ``string(_:)``.
    public init(stringLiteral value: String) { self = .string(value) }
    /// `42` is ``int(_:)``.
    public init(integerLiteral value: Int64) { self = .int(value) }
    /// `true` is ``bool(_:)``.
    public init(booleanLiteral value: Bool) { self = .bool(value) }
    /// `[a, b]` is ``array(_:)``.
    public init(arrayLiteral elements: JSONValue...) { self = .array(elements) }
    /// `["a": x, "b": y]` is ``object(_:)`` with the members in the order written.
    public init(dictionaryLiteral elements: (String, JSONValue)...) { self = .object(elements) }
    /// `nil` is ``null``.
    public init(nilLiteral: ()) { self = .null }
}
