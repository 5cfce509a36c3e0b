/// A kind of device a user can add with `-device`: its QEMU driver name, bus, typed
/// properties, and how it realizes itself in the machine (regions, ioeventfds, IRQs). One
/// table (`DeviceRegistry.types`) drives parsing, `-device help`, `-device NAME,help`,
/// validation errors and construction. QEMU: a TypeInfo + DeviceClass with qdev properties.
public struct DeviceType: Sendable {
    /// The bus a device plugs into, as `-device help` names it.
    public enum Bus: String, Sendable {
        /// The machine itself (no bus), the ISA bus, PCI bus 0.
        case system = "System", isa = "ISA", pci = "PCI"
    }

    /// `-device help` groups, in QEMU's order. QEMU: DeviceCategory.
    public enum Category: String, Sendable, CaseIterable {
        /// DEVICE_CATEGORY_BRIDGE.
        case bridge = "Controller/Bridge/Hub devices"
        /// DEVICE_CATEGORY_STORAGE.
        case storage = "Storage devices"
        /// DEVICE_CATEGORY_NETWORK.
        case network = "Network devices"
        /// DEVICE_CATEGORY_INPUT.
        case input = "Input devices"
        /// DEVICE_CATEGORY_MISC.
        case misc = "Misc devices"
    }

    /// Builds the device in the machine: maps its regions, wires its IRQs, plugs it into its
    /// bus. Returns the device object (for lookups by tests and the monitor).
    public typealias Realize = @Sendable (DeviceInstance, DeviceContext) throws -> AnyObject & Sendable
    /// Checks a parsed instance against the rest of the configuration (e.g. a linked backend's
    /// state); the error is one line for the user.
    public typealias Validate = @Sendable (DeviceInstance, MachineConfiguration) throws(ConfigurationError) -> Void

    /// The driver name `-device` takes. QEMU: TypeInfo.name.
    public let name: String
    /// The bus it plugs into (PCI types also take `addr=` and `multifunction=`).
    public let bus: Bus
    /// Its `-device help` group. QEMU: DeviceClass.categories.
    public let category: Category
    /// `-device help`'s `desc`. QEMU: DeviceClass.desc.
    public let description: String?
    /// Another name `-device` accepts (QEMU's alias, e.g. "virtio-rng").
    public let alias: String?
    /// Every property, the bus's common ones included, sorted by name (as QEMU lists them).
    public let properties: [DeviceProperty]
    let validate: Validate?
    let realize: Realize

    /// Declares a device type. `properties` are its own; a PCI type gets the common ones added.
    /// `validate` runs once the whole configuration is known; `realize` builds the device.
    public init(name: String, bus: Bus, category: Category, description: String? = nil, alias: String? = nil,
                properties: [DeviceProperty], validate: Validate? = nil, realize: @escaping Realize) {
        self.name = name
        self.alias = alias
        self.bus = bus
        self.category = category
        self.description = description
        let common = bus == .pci ? Self.pciProperties : []
        self.properties = (common + properties).sorted { $0.name < $1.name }
        self.validate = validate
        self.realize = realize
    }

    /// What every PCI device takes. QEMU: pci_props (hw/pci/pci.c).
    static let pciProperties: [DeviceProperty] = [
        DeviceProperty("addr", .pciAddress, default: .signed(-1), help: "Slot and optional function number, example: 06.0 or 06"),
        DeviceProperty("multifunction", .bool, default: .bool(false), help: "on/off", check: { v in
            v == .bool(true) ? "multifunction=on is not supported (single-function devices only)" : nil
        }),
        DeviceProperty("romfile", .string),
        DeviceProperty("rombar", .uint32, default: .unsigned(1)),
    ]

    /// The `-device help` line. QEMU: qdev_print_devinfo().
    var listLine: String {
        "name \"\(name)\", bus \(bus.rawValue)" + (alias.map { ", alias \"\($0)\"" } ?? "")
            + (description.map { ", desc \"\($0)\"" } ?? "")
    }

    /// The `-device NAME,help` listing. QEMU: qdev_device_help().
    public var propertyHelp: String {
        properties.isEmpty ? "There are no options for \(name).\n"
            : "\(name) options:\n" + properties.map { $0.helpLine + "\n" }.joined()
    }
}

/// A device requested on the command line: its type's name, its id, and every property's
/// value (given or default), already checked. QEMU: the device's QemuOpts after qdev parsing.
public struct DeviceInstance: Sendable, Equatable {
    /// The type's name (an alias already resolved).
    public let driver: String
    /// `id=`, if given.
    public let id: String?
    /// Every declared property's value: given, or its default.
    public let values: [String: DevicePropertyValue]

    /// An instance as `DeviceRegistry.parse` makes one (tests build them directly).
    public init(driver: String, id: String? = nil, values: [String: DevicePropertyValue]) {
        self.driver = driver
        self.id = id
        self.values = values
    }

    /// The value of property `name`, if it has one.
    public subscript(_ name: String) -> DevicePropertyValue? { values[name] }

    /// An unsigned property's value (0 when absent: the type declares a default for those it reads).
    public func unsigned(_ name: String) -> UInt64 { if case .unsigned(let v) = values[name] { v } else { 0 } }
    /// A bool property's value (false when absent).
    public func bool(_ name: String) -> Bool { if case .bool(let b) = values[name] { b } else { false } }
    /// A string or link property's value (nil when absent).
    public func string(_ name: String) -> String? { if case .string(let s) = values[name] { s } else { nil } }

    /// The requested PCI slot and function, if `addr=` was given.
    public var pciAddress: (slot: Int, function: Int)? {
        if case .pciAddress(let s, let f) = values["addr"] { (s, f) } else { nil }
    }
}
