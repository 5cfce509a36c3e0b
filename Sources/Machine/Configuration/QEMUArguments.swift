/// QEMU's options as given, before checking: what `vmm -kernel K ...` and `vmm run` hand over.
public struct QEMUArguments: Sendable {
    public var kernel: String?
    public var append: String?
    public var initrd: String?
    public var memory: String?
    public var smp: String?
    public var device: [String] = []
    public var serial: String?
    public var machine: [String] = []
    public var accel: [String] = []
    public var enableKVM = false
    public var cpu: String?
    public var name: String?
    public var nodefaults = false
    public var nographic = false
    public var display: String?
    public var vnc: String?
    public var noReboot = false
    public var global: [String] = []
    public var monitor: String?
    public var drive: [String] = []
    /// `-net` / `-nic` values (only "none" is accepted).
    public var net: [String] = []
    public var vga: String?
    public var noACPI = false
    public var object: [String] = []
    /// Flags accepted and ignored with a warning: (flag, value).
    public var ignored: [(String, String)] = []

    public init(
        kernel: String? = nil, append: String? = nil, initrd: String? = nil, memory: String? = nil,
        smp: String? = nil, device: [String] = [], serial: String? = nil, machine: [String] = [],
        accel: [String] = [], enableKVM: Bool = false, cpu: String? = nil, name: String? = nil,
        nodefaults: Bool = false, nographic: Bool = false, display: String? = nil, vnc: String? = nil,
        noReboot: Bool = false, global: [String] = [], monitor: String? = nil, drive: [String] = [],
        net: [String] = [], vga: String? = nil, noACPI: Bool = false, object: [String] = [],
        ignored: [(String, String)] = []
    ) {
        self.kernel = kernel; self.append = append; self.initrd = initrd; self.memory = memory
        self.smp = smp; self.device = device; self.serial = serial; self.machine = machine
        self.accel = accel; self.enableKVM = enableKVM; self.cpu = cpu; self.name = name
        self.nodefaults = nodefaults; self.nographic = nographic; self.display = display; self.vnc = vnc
        self.noReboot = noReboot; self.global = global; self.monitor = monitor
        self.drive = drive
        self.net = net; self.vga = vga; self.noACPI = noACPI; self.object = object; self.ignored = ignored
    }
}

extension MachineConfiguration {
    /// Builds the machine configuration from QEMU's options, checking every value.
    public init(qemu a: QEMUArguments) throws(ConfigurationError) {
        var c = MachineConfiguration()
        c.kernel = a.kernel
        c.append = a.append ?? ""
        c.initrd = a.initrd
        if let m = a.memory { c.memorySize = try QEMUValueParsing.memorySize(m) }
        if let s = a.smp { (c.cpuCount, c.maxCPUs) = try QEMUValueParsing.smp(s) }
        for n in a.net where n != "none" {
            throw ConfigurationError("-net/-nic: '\(n)' is not supported (only none: there are no network devices)")
        }
        if let v = a.vga, v != "none" { c.warnings.append("-vga \(v): there is no VGA device here") }
        c.acpi = !a.noACPI
        for (flag, value) in a.ignored { c.warnings.append("\(flag)\(value.isEmpty ? "" : " " + value): ignored") }
        var rngObjects = Set<String>()
        for o in a.object {
            let kv = QEMUValueParsing.keyValues(o, impliedKey: "qom-type")
            let type = kv.first { $0.key == "qom-type" }?.value ?? ""
            guard type == "rng-random" || type == "rng-builtin" else {
                throw ConfigurationError("-object: '\(type)' is not supported (rng-random, rng-builtin)")
            }
            guard let id = kv.first(where: { $0.key == "id" })?.value else { throw ConfigurationError("-object \(type): missing id=") }
            rngObjects.insert(id)
        }
        for d in a.drive {
            let drive = try QEMUValueParsing.drive(d, index: c.drives.count)
            guard !c.drives.contains(where: { $0.id == drive.id }) else {
                throw ConfigurationError("-drive: duplicate id '\(drive.id)'")
            }
            c.drives.append(drive)
            if drive.interface == .virtio { c.devices.append(.virtioBlockPCI(drive: drive.id)) }
        }
        for d in a.device {
            let spec = try QEMUValueParsing.device(d)
            if case .virtioRNGPCI = spec, let rng = QEMUValueParsing.keyValues(d, impliedKey: "driver").first(where: { $0.key == "rng" })?.value,
               !rngObjects.contains(rng) {
                throw ConfigurationError("-device virtio-rng-pci: rng '\(rng)' not found (add -object rng-random,id=\(rng))")
            }
            c.devices.append(spec)
        }
        var used = Set<String>()
        for case .virtioBlockPCI(let id, _) in c.devices {
            guard c.drives.contains(where: { $0.id == id }) else {
                throw ConfigurationError("-device virtio-blk-pci: drive '\(id)' not found (add -drive id=\(id),file=...)")
            }
            guard used.insert(id).inserted else { throw ConfigurationError("-device virtio-blk-pci: drive '\(id)' is already in use") }
        }
        for m in a.machine {
            for (k, v) in QEMUValueParsing.keyValues(m, impliedKey: "type") {
                switch (k, v) {
                case ("type", "pc"), ("type", "pc-i440fx"), ("accel", "kvm"): break
                case ("type", let t) where t.hasPrefix("pc-i440fx-"): break
                case ("type", let t):
                    throw ConfigurationError("-machine: machine type '\(t)' is not supported (only pc)")
                case ("accel", let x):
                    throw ConfigurationError("-machine: accelerator '\(x)' is not supported (only kvm)")
                default: c.warnings.append("-machine: property '\(k)=\(v)' ignored")
                }
            }
        }
        for spec in a.accel {
            let kv = QEMUValueParsing.keyValues(spec, impliedKey: "accel")
            if let name = kv.first(where: { $0.key == "accel" })?.value, name != "kvm" {
                throw ConfigurationError("-accel: accelerator '\(name)' is not supported (only kvm)")
            }
            for (k, v) in kv where k != "accel" { c.warnings.append("-accel: property '\(k)=\(v)' ignored") }
        }
        if let cpu = a.cpu {
            let model = QEMUValueParsing.keyValues(cpu, impliedKey: "model").first?.value ?? "host"
            c.cpuModel = model
            if model != "host" && model != "max" {
                c.warnings.append("-cpu \(model): the guest sees the host's CPUID (as with -cpu host)")
            }
        }
        c.name = a.name.map { QEMUValueParsing.keyValues($0, impliedKey: "guest").first?.value ?? $0 }
        if let d = a.display, d != "none" {
            throw ConfigurationError("-display: '\(d)' is not supported (only none)")
        }
        if let v = a.vnc, v != "none" {
            throw ConfigurationError("-vnc: '\(v)' is not supported (only none)")
        }
        c.noReboot = a.noReboot
        for g in a.global { c.warnings.append("-global \(g): ignored") }
        // Serial: an explicit -serial wins; -nodefaults alone leaves COM1 without a backend.
        if let s = a.serial {
            c.serial = try QEMUValueParsing.serial(s)
        } else {
            c.serial = a.nodefaults && !a.nographic ? .none : .stdio
        }
        if let m = a.monitor {
            switch m {
            case "stdio": c.monitor = .stdio
            case "none", "null": c.monitor = .none
            default: throw ConfigurationError("-monitor: '\(m)' is not supported (stdio, none)")
            }
        }
        if c.monitor == .stdio && c.serial == .stdio {
            if a.serial != nil {
                throw ConfigurationError("-monitor stdio: stdio is already used by -serial stdio")
            }
            c.serial = .none
        }
        self = c
    }
}
