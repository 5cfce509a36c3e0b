import ArgumentParser
import Machine

/// QEMU's option names, single- or double-dash, as `qemu-system-x86_64` accepts them.
private func qemuName(_ name: String) -> NameSpecification {
    [.customLong(name, withSingleDash: true), .customLong(name)]
}

/// The subset of `qemu-system-x86_64`'s command line that small test kernels use.
struct QEMUOptions: ParsableArguments {
    @Option(name: qemuName("kernel"), help: "Multiboot kernel image.")
    var kernel: String?
    @Option(name: qemuName("append"), parsing: .unconditional, help: "Kernel command line.")
    var append: String?
    @Option(name: qemuName("initrd"), help: "Multiboot modules: \"file args,file2\".")
    var initrd: String?
    @Option(name: [.customShort("m")], help: "RAM size (256, 256M, 2G).")
    var memory: String?
    @Option(name: qemuName("smp"), help: "CPUs: n[,maxcpus=m,sockets=,cores=,threads=].")
    var smp: String?
    @Option(name: qemuName("device"), help: "isa-debug-exit,iobase=,iosize= | pc-testdev | pci-testdev | help.")
    var device: [String] = []
    @Option(name: qemuName("serial"), help: "stdio | file:PATH | none.")
    var serial: String?
    @Option(name: [.customLong("machine", withSingleDash: true), .customLong("machine"), .customShort("M")], help: "[type=]pc[,accel=kvm].")
    var machine: [String] = []
    @Option(name: qemuName("accel"), help: "kvm.")
    var accel: [String] = []
    @Flag(name: qemuName("enable-kvm"), help: "Same as -accel kvm.")
    var enableKVM = false
    @Option(name: qemuName("cpu"), help: "host | max | model (the host's CPUID in every case).")
    var cpu: String?
    @Option(name: qemuName("name"), help: "Guest name.")
    var name: String?
    @Flag(name: qemuName("nodefaults"), help: "No default devices.")
    var nodefaults = false
    @Flag(name: qemuName("nographic"), help: "No display (serial on stdio unless -serial says otherwise).")
    var nographic = false
    @Option(name: qemuName("display"), help: "none.")
    var display: String?
    @Option(name: qemuName("vnc"), help: "none.")
    var vnc: String?
    @Flag(name: qemuName("no-reboot"), help: "Exit instead of rebooting.")
    var noReboot = false
    @Option(name: qemuName("global"), help: "driver.prop=value (accepted; ignored with a warning).")
    var global: [String] = []
    @Option(name: qemuName("monitor"), help: "stdio | none.")
    var monitor: String?

    /// Builds the machine configuration, checking every value.
    func configuration() throws(ConfigurationError) -> MachineConfiguration {
        var c = MachineConfiguration()
        c.kernel = kernel
        c.append = append ?? ""
        c.initrd = initrd
        if let memory { c.memorySize = try QEMUValueParsing.memorySize(memory) }
        if let smp { (c.cpuCount, c.maxCPUs) = try QEMUValueParsing.smp(smp) }
        for d in device { c.devices.append(try QEMUValueParsing.device(d)) }
        for m in machine {
            for (k, v) in QEMUValueParsing.keyValues(m, impliedKey: "type") {
                switch (k, v) {
                case ("type", "pc"), ("type", "pc-i440fx"), ("accel", "kvm"): break
                case ("type", let t) where t.hasPrefix("pc-i440fx-") || t.hasPrefix("pc-"): break
                case ("type", let t): throw ConfigurationError("-machine: machine type '\(t)' is not supported (only pc)")
                case ("accel", let a): throw ConfigurationError("-machine: accelerator '\(a)' is not supported (only kvm)")
                default: c.warnings.append("-machine: property '\(k)=\(v)' ignored")
                }
            }
        }
        for a in accel {
            let kv = QEMUValueParsing.keyValues(a, impliedKey: "accel")
            if let name = kv.first(where: { $0.key == "accel" })?.value, name != "kvm" {
                throw ConfigurationError("-accel: accelerator '\(name)' is not supported (only kvm)")
            }
            for (k, v) in kv where k != "accel" { c.warnings.append("-accel: property '\(k)=\(v)' ignored") }
        }
        if let cpu {
            let model = QEMUValueParsing.keyValues(cpu, impliedKey: "model").first?.value ?? "host"
            c.cpuModel = model
            if model != "host" && model != "max" {
                c.warnings.append("-cpu \(model): the guest sees the host's CPUID (as -cpu host)")
            }
        }
        c.name = name.map { QEMUValueParsing.keyValues($0, impliedKey: "guest").first?.value ?? $0 }
        if let display, display != "none" {
            throw ConfigurationError("-display: '\(display)' is not supported (only none)")
        }
        if let vnc, vnc != "none" {
            throw ConfigurationError("-vnc: '\(vnc)' is not supported (only none)")
        }
        c.noReboot = noReboot
        for g in global { c.warnings.append("-global \(g): ignored") }
        // Serial: explicit -serial wins; -nodefaults alone means no serial port backend.
        if let serial {
            c.serial = try QEMUValueParsing.serial(serial)
        } else {
            c.serial = nodefaults && !nographic ? .none : .stdio
        }
        if let monitor {
            switch monitor {
            case "stdio": c.monitor = .stdio
            case "none", "null": c.monitor = .none
            default: throw ConfigurationError("-monitor: '\(monitor)' is not supported (stdio, none)")
            }
        }
        if c.monitor == .stdio && c.serial == .stdio && serial != nil {
            throw ConfigurationError("-monitor stdio: stdio is already used by -serial stdio")
        }
        if c.monitor == .stdio && c.serial == .stdio { c.serial = .none }
        return c
    }
}
