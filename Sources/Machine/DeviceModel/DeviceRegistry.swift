/// Every device type `-device` knows. Adding a device means one file declaring its
/// `DeviceType` and one line here.
public enum DeviceRegistry {
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
    /// declared and parse, `id` and `bus` are checked, defaults fill the rest. Errors are
    /// QEMU's. QEMU: qdev_device_add() → qdev_set_props / object_set_properties_from_qdict.
    public static func parse(_ text: String) throws(ConfigurationError) -> DeviceInstance {
        let items = QEMUValueParsing.keyValues(text, impliedKey: "driver")
        guard let driver = items.first(where: { $0.key == "driver" })?.value, !driver.isEmpty else {
            throw ConfigurationError("-device: missing driver name in '\(text)'")
        }
        guard let type = type(named: driver) else {
            throw ConfigurationError("-device \(text): '\(driver)' is not a valid device model name")
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
