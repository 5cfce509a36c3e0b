/// The type a command argument must have. QEMU: the QAPI schema's argument types, checked by
/// the QObject input visitor.
public enum QMPArgumentType: Sendable {
    case string, int, bool, stringList, any

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

/// One declared argument of a command.
public struct QMPArgument: Sendable {
    public var name: String
    public var type: QMPArgumentType
    public var required: Bool

    public init(_ name: String, _ type: QMPArgumentType, required: Bool = false) {
        self.name = name
        self.type = type
        self.required = required
    }
}

/// A QMP command: its name, declared arguments (anything else is refused before the handler
/// runs, as QEMU's generated marshallers refuse it), and the handler.
public struct QMPCommand: Sendable {
    public typealias Handler = @Sendable (_ arguments: JSONValue) throws(QMPError) -> JSONValue

    public var name: String
    public var arguments: [QMPArgument]
    /// May run out-of-band (`exec-oob`). QEMU: QCO_ALLOW_OOB.
    public var allowOOB: Bool
    public var handler: Handler

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
