/// The type a command argument must have. QEMU: the QAPI schema's argument types, checked by
/// the QObject input visitor.
public enum QMPArgumentType: Sendable {
    /// A JSON string (QAPI `str`).
    case string
    /// A JSON integer, signed or not (QAPI `int`, `uint64`, `size`, …).
    case int
    /// `true` or `false` (QAPI `bool`).
    case bool
    /// An array of strings (QAPI `['str']`).
    case stringList
    /// Anything; the handler checks it (QAPI `any`).
    case any

    var name: String {
        switch self {
        case .string: "string"
        case .int: "integer"
        case .bool: "boolean"
        case .stringList: "array"
        case .any: "any"
        }
    }

    func accepts(_ v: JSONValue) -> Bool {
        switch (self, v) {
        case (.any, _), (.string, .string), (.bool, .bool): return true
        case (.int, _): return v.integer != nil
        case (.stringList, .array(let items)): return items.allSatisfy { $0.string != nil }
        default: return false
        }
    }
}

/// One declared argument of a command. QEMU: a member of the command's `data` in the QAPI
/// schema (optional ones written `*name`).
public struct QMPArgument: Sendable {
    /// The member name in `arguments`.
    public var name: String
    /// The type its value must have.
    public var type: QMPArgumentType
    /// Whether a request must give it ("Parameter 'x' is missing" otherwise).
    public var required: Bool

    /// An argument `name` of `type`, optional unless `required`.
    public init(_ name: String, _ type: QMPArgumentType, required: Bool = false) {
        self.name = name
        self.type = type
        self.required = required
    }
}

/// A QMP command: its name, declared arguments (anything else is refused before the handler
/// runs, as QEMU's generated marshallers refuse it), and the handler.
///
/// QEMU: `QmpCommand` in the command table (`qmp_register_command()`), with the generated
/// `qmp_marshal_*()` as its handler.
public struct QMPCommand: Sendable {
    /// Runs the command: gets the request's `arguments` object (already checked against
    /// ``arguments``; `{}` when the request had none) and returns the reply's `return` value, or
    /// throws the error to reply with. Runs on the server's connection thread, one command at a
    /// time. QEMU: `QmpCommandFunc`.
    public typealias Handler = @Sendable (_ arguments: JSONValue) throws(QMPError) -> JSONValue

    /// The `execute` name, e.g. `query-status`; unstable commands start with `x-` as QEMU's do.
    public var name: String
    /// The arguments it takes; any other member of `arguments` is refused.
    public var arguments: [QMPArgument]
    /// May run out-of-band (`exec-oob`). QEMU: QCO_ALLOW_OOB.
    public var allowOOB: Bool
    /// What the command does.
    public var handler: Handler

    /// A command `name` taking `arguments`, run by `handler`. QEMU: `qmp_register_command()`.
    public init(_ name: String, arguments: [QMPArgument] = [], allowOOB: Bool = false, handler: @escaping Handler) {
        self.name = name
        self.arguments = arguments
        self.allowOOB = allowOOB
        self.handler = handler
    }

    /// Checks `args` against the declaration: unexpected, missing and mistyped parameters get
    /// QEMU's messages. QEMU: qobject-input-visitor.c.
    func validate(_ args: JSONValue) throws(QMPError) {
        guard case .object(let members) = args else { throw QMPError("QMP input member 'arguments' must be an object") }
        for (key, value) in members {
            guard let declared = arguments.first(where: { $0.name == key }) else {
                throw QMPError("Parameter '\(key)' is unexpected")
            }
            guard declared.type.accepts(value) else {
                throw QMPError("Invalid parameter type for '\(key)', expected: \(declared.type.name)")
            }
        }
        for a in arguments where a.required && args[a.name] == nil {
            throw QMPError("Parameter '\(a.name)' is missing")
        }
    }
}
