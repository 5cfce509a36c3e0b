/// Every device type `-device` knows. Adding a device means one file declaring its
/// `DeviceType` and one line here.
public enum DeviceRegistry {
    /// Every `-device` type; parsing, `-device help` and `-device NAME,help` all read this table.
    public static let types: [DeviceType] = [
        .isaDebugExit,
        .isaDebugCon,
        .isaSerial,
        .pcTestDev,
        .pciTestDev,
        .virtioRNGPCI,
        .virtioBlockPCI,
        .virtioNetPCI, .virtioSerialPCI, .virtconsole, .virtserialport,
    ]

    /// The type `name` (or its alias) names.
    public static func type(named name: String) -> DeviceType? { types.first { $0.name == name || $0.alias == name } }

    /// `-device help`: the types by category, as QEMU lists them. QEMU: qdev_device_help().
    public static var helpText: String {
        var out = ""
        for category in DeviceType.Category.allCases {
            let members = types.filter { $0.category == category }.sorted { $0.name < $1.name }
            guard !members.isEmpty else { continue }
            out += "\(category.rawValue):\n" + members.map { $0.listLine + "\n" }.joined() + "\n"
        }
        return out
    }

    /// Parses one `-device DRIVER[,prop=value…]`: the driver must exist, every property must be
    /// declared and parse, `id` and `bus` are checked, `-global` values for the driver fill the
    /// properties the text does not set, defaults the rest. Errors are QEMU's.
    /// QEMU: qdev_device_add() → qdev_set_props / object_set_properties_from_qdict,
    /// qdev_prop_set_globals().
    public static func parse(_ text: String, globals: [GlobalProperty] = []) throws(ConfigurationError) -> DeviceInstance {
        var items = QEMUValueParsing.keyValues(text, impliedKey: "driver")
        guard let driver = items.first(where: { $0.key == "driver" })?.value, !driver.isEmpty else {
            throw ConfigurationError("-device: missing driver name in '\(text)'")
        }
        guard let type = type(named: driver) else {
            throw ConfigurationError("-device \(text): '\(driver)' is not a valid device model name")
        }
        for g in globals where Self.type(named: g.driver)?.name == type.name && !items.contains(where: { $0.key == g.property }) {
            items.append((g.property, g.value))
        }
        var values: [String: DevicePropertyValue] = [:]
        var id: String?
        for (key, value) in items where key != "driver" {
            func fail(_ m: String) -> ConfigurationError { ConfigurationError("-device \(text): \(m)") }
            switch key {
            case "id":
                guard Self.isValidID(value) else {
                    throw fail("Parameter 'id' expects an identifier")
                }
                id = value
            case "bus":
                let expected = type.bus == .pci ? "pci.0" : type.bus == .isa ? "isa.0" : "main-system-bus"
                guard value == expected else { throw fail("Bus '\(value)' not found") }
            default:
                guard let property = type.properties.first(where: { $0.name == key }) else {
                    throw fail("Property '\(type.name).\(key)' not found")
                }
                do { values[key] = try property.parse(value, driver: type.name) } catch { throw fail(error.description) }
            }
        }
        for p in type.properties where values[p.name] == nil {
            if let d = p.defaultValue, p.kind != .pciAddress { values[p.name] = d }
        }
        return DeviceInstance(driver: type.name, id: id, values: values)
    }

    /// QEMU's id rule: a letter, then letters, digits, '-', '.', '_'. QEMU: id_wellformed().
    static func isValidID(_ id: String) -> Bool {
        guard let first = id.unicodeScalars.first, first.properties.isAlphabetic, first.isASCII else { return false }
        return id.unicodeScalars.allSatisfy { $0.isASCII && ($0.properties.isAlphabetic || ("0"..."9").contains($0) || "-._".unicodeScalars.contains($0)) }
    }
}

/// A `-global DRIVER.PROPERTY=VALUE`: a default for that property of every such device that
/// does not set it. QEMU: GlobalProperty, qemu_global_option().
public struct GlobalProperty: Sendable, Equatable {
    /// The device type the default is for (a `-device` driver name).
    public var driver: String
    /// The property name.
    public var property: String
    /// The value, as it would be written in `-device`.
    public var value: String

    /// The default `value` for `driver`'s `property`.
    public init(driver: String, property: String, value: String) {
        self.driver = driver
        self.property = property
        self.value = value
    }

    /// `DRIVER.PROPERTY=VALUE` or `driver=D,property=P,value=V`; nil when it is neither.
    /// QEMU: qemu_global_option().
    public init?(_ text: String) {
        if let eq = text.firstIndex(of: "="), let dot = text[..<eq].firstIndex(of: "."), dot != text.startIndex,
           text.index(after: dot) < eq, !text[..<eq].contains(",") {
            self.init(driver: String(text[..<dot]), property: String(text[text.index(after: dot)..<eq]),
                      value: String(text[text.index(after: eq)...]))
            return
        }
        let kv = Dictionary(QEMUValueParsing.keyValues(text, impliedKey: "driver").map { ($0.key, $0.value) }, uniquingKeysWith: { $1 })
        guard let driver = kv["driver"], let property = kv["property"], let value = kv["value"] else { return nil }
        self.init(driver: driver, property: property, value: value)
    }

    /// Whether it names a device type and one of its properties.
    public var appliesToADevice: Bool {
        DeviceRegistry.type(named: driver)?.properties.contains { $0.name == property } ?? false
    }
}
