/// QEMU's options as given, before checking: what the command line (`QEMUCommandLine`) collects
/// for `vmm -kernel K ...` and `vmm run`.
public struct QEMUArguments: Sendable {
    /// `-kernel FILE`: the kernel to load (Multiboot or Linux bzImage).
    public var kernel: String?
    /// `-append CMDLINE`: the kernel command line.
    public var append: String?
    /// `-initrd FILE`: the initial ram disk, or the Multiboot module list.
    public var initrd: String?
    /// `-m SIZE`: guest RAM, as QEMU writes it (256, 256M, 2G, size=...).
    public var memory: String?
    /// `-smp N[,maxcpus=...]`: the vCPU count.
    public var smp: String?
    /// `-device` values, in order.
    public var device: [String] = []
    /// `-serial` values, one per port (COM1 first).
    public var serial: [String] = []
    /// `-chardev` values.
    public var chardev: [String] = []
    /// `-machine` values: only type pc (or pc-i440fx[-VERSION]) and accel=kvm are accepted.
    public var machine: [String] = []
    /// `-accel` values: only kvm is accepted; other properties are ignored with a warning.
    public var accel: [String] = []
    /// `-enable-kvm`: accepted; KVM is the only accelerator anyway.
    public var enableKVM = false
    /// `-cpu MODEL`: the model name; the guest always sees the host's CPUID.
    public var cpu: String?
    /// `-name NAME` (or `guest=NAME,...`).
    public var name: String?
    /// `-nodefaults`: no default serial port (unless `-nographic`).
    public var nodefaults = false
    /// `-nographic`: COM1 on stdio by default, and firmware told there is no display.
    public var nographic = false
    /// `-display`: only `none` is accepted.
    public var display: String?
    /// `-vnc`: only `none` is accepted.
    public var vnc: String?
    /// `-no-reboot`: a guest reset ends the VM.
    public var noReboot = false
    /// `-global DRIVER.PROP=VALUE` values.
    public var global: [String] = []
    /// `-monitor`: `stdio` or `none`.
    public var monitor: String?
    /// `-qmp` values.
    public var qmp: [String] = []
    /// `-S`.
    public var startPaused = false
    /// `-drive` values.
    public var drive: [String] = []
    /// `-net` values (only "none" is accepted).
    public var net: [String] = []
    /// `-nic` values.
    public var nic: [String] = []
    /// `-netdev` values.
    public var netdev: [String] = []
    /// `-mon` values.
    public var mon: [String] = []
    /// `-vga`: anything but `none` is ignored with a warning (there is no VGA device).
    public var vga: String?
    /// `-no-acpi`: no ACPI tables for the guest.
    public var noACPI = false
    /// `-object` values (rng-random, rng-builtin).
    public var object: [String] = []
    /// `-bios`, `-L`, `-boot`, `-debugcon`.
    public var firmware = FirmwareArguments()
    /// Flags accepted and ignored with a warning: (flag, value).
    public var ignored: [(String, String)] = []

    /// Options as given; every parameter defaults to "not given".
    public init(
        kernel: String? = nil, append: String? = nil, initrd: String? = nil, memory: String? = nil,
        smp: String? = nil, device: [String] = [], serial: [String] = [], chardev: [String] = [], machine: [String] = [],
        accel: [String] = [], enableKVM: Bool = false, cpu: String? = nil, name: String? = nil,
        nodefaults: Bool = false, nographic: Bool = false, display: String? = nil, vnc: String? = nil,
        noReboot: Bool = false, global: [String] = [], monitor: String? = nil, drive: [String] = [],
        net: [String] = [], vga: String? = nil, noACPI: Bool = false, object: [String] = [],
        ignored: [(String, String)] = [], nic: [String] = [], netdev: [String] = [], mon: [String] = []
    ) {
        self.kernel = kernel; self.append = append; self.initrd = initrd; self.memory = memory
        self.smp = smp; self.device = device; self.serial = serial; self.chardev = chardev; self.machine = machine
        self.accel = accel; self.enableKVM = enableKVM; self.cpu = cpu; self.name = name
        self.nodefaults = nodefaults; self.nographic = nographic; self.display = display; self.vnc = vnc
        self.noReboot = noReboot; self.global = global; self.monitor = monitor
        self.drive = drive
        self.net = net; self.vga = vga; self.noACPI = noACPI; self.object = object; self.ignored = ignored
        self.nic = nic; self.netdev = netdev; self.mon = mon
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
            throw ConfigurationError("-net \(n): the legacy -net form is not supported; use -netdev tap,id=n0,ifname=TAP,script=no,downscript=no -device virtio-net-pci,netdev=n0 (or -nic tap,...)")
        }
        for text in a.netdev {
            let (netdev, warnings) = try QEMUValueParsing.netdev(text)
            guard !c.netdevs.contains(where: { $0.id == netdev.id }) else {
                throw ConfigurationError("-netdev \(text): Duplicate ID '\(netdev.id)' for netdev")
            }
            c.netdevs.append(netdev)
            c.warnings += warnings
        }
        if let v = a.vga, v != "none" { c.warnings.append("-vga \(v): there is no VGA device here") }
        c.acpi = !a.noACPI
        for (flag, value) in a.ignored { c.warnings.append("\(flag)\(value.isEmpty ? "" : " " + value): ignored") }
        for o in a.object {
            let kv = QEMUValueParsing.keyValues(o, impliedKey: "qom-type")
            let type = kv.first { $0.key == "qom-type" }?.value ?? ""
            guard type == "rng-random" || type == "rng-builtin" else {
                throw ConfigurationError("-object: '\(type)' is not supported (rng-random, rng-builtin)")
            }
            guard let id = kv.first(where: { $0.key == "id" })?.value else { throw ConfigurationError("-object \(type): missing id=") }
            guard !c.objects.contains(where: { $0.id == id }) else { throw ConfigurationError("-object \(type): Duplicate ID '\(id)' for object") }
            c.objects.append(ObjectSpec(type: type, id: id))
        }
        for text in a.mon { c.chardevMonitors.append(try QEMUValueParsing.mon(text)) }
        for text in a.chardev {
            let chardev = try QEMUValueParsing.chardev(text)
            guard !c.chardevs.contains(where: { $0.id == chardev.id }) else {
                throw ConfigurationError("-chardev \(text): attempt to add duplicate property 'id' to object (type 'chardev')")
            }
            c.chardevs.append(chardev)
        }
        // Serial ports: an explicit -serial wins; with none, COM1 goes to stdio unless -nodefaults
        // (QEMU: -nodefaults and no -serial → no serial port).
        var serials = a.serial
        if serials.isEmpty && (!a.nodefaults || a.nographic) { serials = ["stdio"] }
        if let m = a.monitor {
            switch m {
            case "stdio": c.monitor = .stdio
            case "none", "null": c.monitor = .none
            default: throw ConfigurationError("-monitor: '\(m)' is not supported (stdio, none)")
            }
        }
        if c.monitor == .stdio, serials.contains(where: { $0 == "stdio" || $0 == "mon:stdio" }) {
            if !a.serial.isEmpty { throw ConfigurationError("-monitor stdio: stdio is already used by -serial stdio") }
            serials = []
        }
        guard serials.count <= 4 else { throw ConfigurationError("-serial: Max. supported number of ISA serial ports is 4.") }
        for (index, text) in serials.enumerated() {
            let id: String
            switch try QEMUValueParsing.serialTarget(text) {
            case .none: continue
            case .backend(let backend):
                id = "serial\(index)"
                c.chardevs.append(ChardevSpec(id: id, backend: backend))
            case .chardev(let existing):
                guard c.chardevs.contains(where: { $0.id == existing }) else {
                    throw ConfigurationError("-serial \(text): chardev '\(existing)' not found")
                }
                id = existing
            }
            c.devices.append(DeviceInstance(driver: "isa-serial", values: [
                "chardev": .string(id), "index": .unsigned(UInt64(index)),
                "iobase": .unsigned(0xffff_ffff), "irq": .unsigned(0xffff_ffff)]))
        }
        for q in a.qmp { c.qmp.append(try QEMUValueParsing.monitorSocket(q, option: "-qmp")) }
        c.startPaused = a.startPaused
        for d in a.drive {
            let drive = try QEMUValueParsing.drive(d, index: c.drives.count)
            guard !c.drives.contains(where: { $0.id == drive.id }) else {
                throw ConfigurationError("-drive: duplicate id '\(drive.id)'")
            }
            c.drives.append(drive)
        }
        var ids = Set<String>()
        // -nic: a tap backend and its NIC, ahead of -device's. QEMU: net_param_nic().
        // -global defaults for device properties (others are accepted and warned about, below).
        c.globals = a.global.compactMap { GlobalProperty($0) }.filter(\.appliesToADevice)
        for (i, text) in a.nic.enumerated() {
            let (request, warnings) = try QEMUValueParsing.nic(text, index: i)
            c.warnings += warnings
            guard let request else { continue }
            c.netdevs.append(request.netdev)
            c.devices.append(try DeviceRegistry.parse(request.device, globals: c.globals))
        }
        for d in a.device {
            if d == "help" || d == "?" { continue }
            let instance = try DeviceRegistry.parse(d, globals: c.globals)
            if let id = instance.id, !ids.insert(id).inserted {
                throw ConfigurationError("-device \(d): Duplicate ID '\(id)' for device")
            }
            c.devices.append(instance)
        }
        // QEMU creates the devices -drive if=virtio implies after every -device.
        for drive in c.drives where drive.interface == .virtio {
            c.devices.append(try DeviceRegistry.parse("virtio-blk-pci,drive=\(drive.id)", globals: c.globals))
        }
        for d in c.devices {
            try DeviceRegistry.type(named: d.driver)?.validate?(d, c)
        }
        try c.checkBackendUse()
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
        try c.applyFirmware(a.firmware)
        for g in a.global where !(GlobalProperty(g)?.appliesToADevice ?? false) { c.warnings.append("-global \(g): ignored") }
        self = c
    }
}
