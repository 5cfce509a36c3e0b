/// The firmware options of QEMU's command line as given (`-bios`, `-L`, `-boot`, `-debugcon`),
/// collected by `QEMUCommandLine` and checked by `MachineConfiguration.applyFirmware`.
public struct FirmwareArguments: Sendable {
    /// `-bios FILE`.
    public var bios: String?
    /// `-L DIR`, in order (`-L help` prints the search path).
    public var dataDirectories: [String] = []
    /// `-boot` values, merged left to right.
    public var boot: [String] = []
    /// `-debugcon DEV` values (QEMU accepts one).
    public var debugcon: [String] = []
    /// `-nographic` (firmware then uses the serial port as its console).
    public var noGraphic = false

    /// No firmware options: QEMU's defaults.
    public init() {}
}

/// `-boot [order=drives][,once=drives][,menu=on|off][,splash-time=ms][,reboot-timeout=ms][,strict=on|off]`.
/// QEMU: the "boot-opts" option group (softmmu/vl.c), read by pc_cmos_init() (order),
/// fw_cfg_common_realize() (menu), fw_cfg_bootsplash() (splash-time), fw_cfg_reboot()
/// (reboot-timeout) and get_boot_devices_list() (strict).
public struct BootOptions: Sendable, Equatable {
    /// Legacy boot order, drive letters a/b (floppy), c (disk), d (CD-ROM), n (network); the pc
    /// machine's default is "cad". Written to CMOS 0x3d/0x38. QEMU: set_boot_dev().
    public var order = "cad"
    /// `once=`: the order for the first boot only (QEMU restores `order` at the first reset).
    public var once: String?
    /// `menu=on|off`; nil when not given. QEMU: FW_CFG_BOOT_MENU.
    public var menu: Bool?
    /// `splash-time=` in ms, 0...65535: "etc/boot-menu-wait". QEMU: fw_cfg_bootsplash().
    public var splashTime: UInt16?
    /// `reboot-timeout=` in ms (-1: never reboot after a failed boot), "etc/boot-fail-wait".
    /// QEMU: fw_cfg_reboot().
    public var rebootTimeout: Int32 = -1
    /// `strict=on`: "HALT" ends the bootorder file, so firmware boots nothing unlisted.
    public var strict = false

    /// QEMU's pc defaults: order "cad", no menu or splash, never reboot after a failed boot, not strict.
    public init() {}
}

extension QEMUValueParsing {
    /// Parses one `-boot` value into `options` (several `-boot` options merge). A bare value is
    /// `order=`. Errors are QEMU's. QEMU: validate_bootdevices(), fw_cfg_reboot(),
    /// fw_cfg_bootsplash(), qemu_opt_get_bool().
    public static func boot(_ text: String, into options: inout BootOptions) throws(ConfigurationError) {
        func drives(_ v: String, _ key: String) throws(ConfigurationError) -> String {
            var seen = Set<Character>()
            for c in v {
                guard "abcdefghijklmnop".contains(c) else {
                    throw ConfigurationError("-boot \(key)=\(v): Invalid boot device '\(c)'")
                }
                guard seen.insert(c).inserted else { throw ConfigurationError("-boot \(key)=\(v): Boot device '\(c)' was given twice") }
            }
            // The pc machine keeps at most three (CMOS nibbles). QEMU: set_boot_dev().
            guard v.count <= 3 else { throw ConfigurationError("-boot \(key)=\(v): Too many boot devices for PC") }
            for c in v where !"abcdn".contains(c) {
                throw ConfigurationError("-boot \(key)=\(v): Invalid boot device for PC: '\(c)'")
            }
            return v
        }
        for (k, v) in keyValues(text, impliedKey: "order") {
            switch k {
            case "order": options.order = try drives(v, k)
            case "once": options.once = try drives(v, k)
            case "menu", "strict":
                guard let b = DeviceProperty.bool(v) else { throw ConfigurationError("-boot \(k)=\(v): Parameter '\(k)' expects 'on' or 'off'") }
                if k == "menu" { options.menu = b } else { options.strict = b }
            case "splash-time":
                guard let n = Int64(v), (0...0xffff).contains(n) else {
                    throw ConfigurationError("-boot splash-time=\(v): splash-time is invalid,it should be a value between 0 and 65535")
                }
                options.splashTime = UInt16(n)
            case "reboot-timeout":
                guard let n = Int64(v), (-1...0xffff).contains(n) else {
                    throw ConfigurationError("-boot reboot-timeout=\(v): reboot timeout is larger than 65535,it should be a value between -1 and 65535")
                }
                options.rebootTimeout = Int32(n)
            case "splash":
                throw ConfigurationError("-boot splash=\(v): there is no display for a boot splash")
            default:
                throw ConfigurationError("-boot: Invalid parameter '\(k)'")
            }
        }
    }
}

extension DeviceType {
    /// `bootindex=`: -1 (not in the boot order) or a non-negative index. QEMU: set_bootindex()
    /// ("Invalid bootindex").
    static let bootIndexCheck: @Sendable (DevicePropertyValue) -> String? = { v in
        if case .signed(let n) = v, n < -1 { "Parameter 'bootindex' expects a value of -1 or more (got \(n))" } else { nil }
    }
}

extension MachineConfiguration {
    /// The devices with a boot index, by index. QEMU: fw_boot_order (add_boot_device_path()).
    public var bootDevices: [(index: Int64, device: DeviceInstance)] {
        devices.compactMap { d in
            if case .signed(let n) = d["bootindex"], n >= 0 { (n, d) } else { nil }
        }.sorted { $0.index < $1.index }
    }

    /// Checks and applies the firmware options: `-bios`, `-L`, `-boot`, and `-debugcon DEV`
    /// (which, as QEMU, creates chardev "debugcon" on DEV and an isa-debugcon at 0xe9 using it —
    /// at 0x402, where SeaBIOS logs, with `-global isa-debugcon.iobase=0x402`).
    /// QEMU: softmmu/vl.c (-bios → machine "firmware", -L → qemu_add_data_dir(), debugcon_parse()).
    public mutating func applyFirmware(_ f: FirmwareArguments) throws(ConfigurationError) {
        if let bios = f.bios {
            guard !bios.isEmpty else { throw ConfigurationError("-bios: a file name is required") }
            self.bios = bios
        }
        dataDirectories = f.dataDirectories
        var indexes = Set<Int64>()
        for (index, _) in bootDevices where !indexes.insert(index).inserted {
            throw ConfigurationError("-device: The bootindex \(index) has already been used")
        }
        noGraphic = f.noGraphic
        for b in f.boot { try QEMUValueParsing.boot(b, into: &boot) }
        guard f.debugcon.count <= 1 else { throw ConfigurationError("-debugcon: Only one debugcon device is supported") }
        if let spec = f.debugcon.first {
            guard let backend = try QEMUValueParsing.serial(spec) else { return }
            guard !chardevs.contains(where: { $0.id == "debugcon" }) else {
                throw ConfigurationError("-debugcon \(spec): attempt to add duplicate property 'debugcon' to object (type 'chardev')")
            }
            chardevs.append(ChardevSpec(id: "debugcon", backend: backend))
            devices.append(try DeviceRegistry.parse("isa-debugcon,chardev=debugcon", globals: globals))
        }
    }
}
