/// The value of one device property, after parsing. QEMU: the C type behind a qdev property.
public enum DevicePropertyValue: Sendable, Equatable, CustomStringConvertible {
    /// A uint8…uint64 property.
    case unsigned(UInt64)
    /// An int32 property.
    case signed(Int64)
    /// A bool property (on/off).
    case bool(Bool)
    /// A string, or the id a link property names.
    case string(String)
    /// on / off / auto.
    case onOffAuto(Bool?)
    /// A PCI slot and function (`addr=06.0`).
    case pciAddress(slot: Int, function: Int)

    /// The value as `-device NAME,help` prints a default: decimal, on/off, auto, `SS.F` in hex.
    public var description: String {
        switch self {
        case .unsigned(let v): String(v)
        case .signed(let v): String(v)
        case .bool(let b): b ? "on" : "off"
        case .string(let s): s
        case .onOffAuto(let v): v.map { $0 ? "on" : "off" } ?? "auto"
        case .pciAddress(let s, let f): "\(String(s, radix: 16)).\(f)"
        }
    }
}

/// One typed property a device type accepts on `-device`, with its default and help, parsed
/// and printed as QEMU's qdev properties are (`-device NAME,help`). QEMU: `Property`,
/// `PropertyInfo` (hw/core/qdev-properties.c).
public struct DeviceProperty: Sendable {
    /// What the value is, as QEMU names the type in `-device NAME,help`.
    public enum Kind: Sendable, Equatable {
        /// Integers of that C type (`uint8` … `int32`); decimal, 0x hex or 0 octal, range-checked
        /// as QEMU does.
        case uint8, uint16, uint32, uint64, int32
        /// on/off (also yes/no, true/false, y/n).
        case bool
        /// on, off or auto.
        case onOffAuto
        /// Free text.
        case string
        /// `addr=`: slot[.function] in hex. QEMU: qdev_prop_pci_devfn.
        case pciAddress
        /// The id of a backend of this kind (`rng=`, `drive=`, `chardev=`, `netdev=`).
        case link(BackendKind)

        /// The type name in QEMU's help.
        var typeName: String {
            switch self {
            case .uint8: "uint8"
            case .uint16: "uint16"
            case .uint32: "uint32"
            case .uint64: "uint64"
            case .int32, .pciAddress: "int32"
            case .bool: "bool"
            case .onOffAuto: "OnOffAuto"
            case .string: "str"
            case .link(let k): k.propertyTypeName
            }
        }
    }

    /// The key after `-device NAME,`.
    public let name: String
    /// How the value is parsed and what `-device NAME,help` calls its type.
    public let kind: Kind
    /// The default; nil when the property has none (optional strings, links).
    public let defaultValue: DevicePropertyValue?
    /// The help text `-device NAME,help` prints after the type (QEMU's own where QEMU has one).
    public let help: String
    /// A further check of a parsed value, returning QEMU's message when it is refused.
    public let check: (@Sendable (DevicePropertyValue) -> String?)?

    /// A property `name` of `kind`, with its default, help and optional extra check.
    /// QEMU: a DEFINE_PROP_* entry.
    public init(_ name: String, _ kind: Kind, default defaultValue: DevicePropertyValue? = nil, help: String = "",
                check: (@Sendable (DevicePropertyValue) -> String?)? = nil) {
        self.name = name
        self.kind = kind
        self.defaultValue = defaultValue
        self.help = help
        self.check = check
    }

    /// Parses `text` for this property; the error is QEMU's wording.
    /// QEMU: the property's `set` (qdev-properties.c, qapi/qobject-input-visitor.c).
    func parse(_ text: String, driver: String) throws(ConfigurationError) -> DevicePropertyValue {
        func expects(_ what: String) -> ConfigurationError { ConfigurationError("Parameter '\(name)' expects \(what)") }
        func unsigned(_ max: UInt64, _ cName: String) throws(ConfigurationError) -> DevicePropertyValue {
            if text.hasPrefix("-"), QEMUValueParsing.integer(String(text.dropFirst())) != nil { throw expects(cName) }
            guard let v = QEMUValueParsing.integer(text) else { throw expects("integer") }
            guard v <= max else { throw expects(cName) }
            return .unsigned(v)
        }
        let value: DevicePropertyValue
        switch kind {
        case .uint8: value = try unsigned(UInt64(UInt8.max), "uint8_t")
        case .uint16: value = try unsigned(UInt64(UInt16.max), "uint16_t")
        case .uint32: value = try unsigned(UInt64(UInt32.max), "uint32_t")
        case .uint64: value = try unsigned(UInt64.max, "uint64_t")
        case .int32:
            let negative = text.hasPrefix("-")
            guard let magnitude = QEMUValueParsing.integer(negative ? String(text.dropFirst()) : text) else { throw expects("integer") }
            guard magnitude <= (negative ? UInt64(Int32.max) + 1 : UInt64(Int32.max)) else { throw expects("int32_t") }
            value = .signed(negative ? -Int64(magnitude) : Int64(magnitude))
        case .bool:
            guard let b = Self.bool(text) else { throw expects("'on' or 'off'") }
            value = .bool(b)
        case .onOffAuto:
            if text == "auto" { value = .onOffAuto(nil) } else if let b = Self.bool(text) { value = .onOffAuto(b) } else {
                throw ConfigurationError("Parameter '\(name)' does not accept value '\(text)'")
            }
        case .string, .link:
            value = .string(text)
        case .pciAddress:
            guard let a = Self.pciAddress(text) else {
                throw ConfigurationError("Property '\(driver).\(name)' doesn't take value '\(text)'")
            }
            value = a
        }
        if let message = check?(value) { throw ConfigurationError(message) }
        return value
    }

    /// QEMU's boolean spellings. QEMU: qapi_bool_parse().
    static func bool(_ text: String) -> Bool? {
        switch text {
        case "on", "yes", "true", "y": true
        case "off", "no", "false", "n": false
        default: nil
        }
    }

    /// `SS` or `SS.F`, hex, slot < 32, function < 8. QEMU: set_pci_devfn().
    static func pciAddress(_ text: String) -> DevicePropertyValue? {
        let parts = text.split(separator: ".", omittingEmptySubsequences: false)
        guard (1...2).contains(parts.count), parts.allSatisfy({ !$0.isEmpty && $0.count <= 2 }),
              let slot = Int(parts[0], radix: 16), slot < 32 else { return nil }
        let function = parts.count == 2 ? Int(parts[1], radix: 16) : 0
        guard let function, function < 8 else { return nil }
        return .pciAddress(slot: slot, function: function)
    }

    /// One line of `-device NAME,help`, in QEMU's layout:
    /// `  name=<type>            - help (default: value)`. QEMU: qdev_device_help().
    var helpLine: String {
        let head = "\(name)=<\(kind.typeName)>"
        var defaultText = ""
        if let d = defaultValue {
            switch (kind, d) {
            case (.bool, .bool(let b)): defaultText = b ? "true" : "false"
            case (.onOffAuto, _), (.string, _): defaultText = "\"\(d)\""
            case (.pciAddress, _): defaultText = "-1"
            default: defaultText = d.description
            }
        }
        guard !help.isEmpty || !defaultText.isEmpty else { return "  \(head)" }
        let padded = head.count < 22 ? head + String(repeating: " ", count: 22 - head.count) : head
        return "  \(padded) - \(help)\(defaultText.isEmpty ? "" : " (default: \(defaultText))")"
    }
}

/// The kinds of backend a device property can name. QEMU: the QOM types behind `link<>`
/// properties and the drive/chardev/netdev string properties.
public enum BackendKind: String, Sendable, Equatable {
    /// `-drive id=`, `-object rng-*,id=`, `-chardev …,id=`, `-netdev …,id=`.
    case drive, rng, chardev, netdev

    var propertyTypeName: String { self == .rng ? "link<rng-backend>" : "str" }
}
