import Loader
/// One option of QEMU's command line as vmm takes it, declared once: its names, its argument,
/// its help, and where its value goes. The QEMU form (`vmm -kernel K …`), the native form
/// (`vmm run --kernel K …`) and `vmm -help` all come from `QEMUCommandLine.options`.
public struct QEMUOption: Sendable {
    /// `-name` / `--name`; the first is QEMU's, the rest vmm's aliases.
    public let names: [String]
    /// The argument's placeholder in help (nil for a flag).
    public let argument: String?
    /// The option's line in `-help`.
    public let help: String
    let apply: @Sendable (inout QEMUCommandLine.Parsed, String) throws(ConfigurationError) -> Void

    /// An option taking a value.
    static func value(_ names: [String], _ argument: String, _ help: String,
                      _ apply: @escaping @Sendable (inout QEMUCommandLine.Parsed, String) throws(ConfigurationError) -> Void) -> QEMUOption {
        QEMUOption(names: names, argument: argument, help: help, apply: apply)
    }

    /// A flag.
    static func flag(_ names: [String], _ help: String, _ apply: @escaping @Sendable (inout QEMUCommandLine.Parsed) -> Void) -> QEMUOption {
        QEMUOption(names: names, argument: nil, help: help, apply: { p, _ in apply(&p) })
    }

    /// Accepted, ignored, and named in a warning.
    static func ignored(_ name: String, _ argument: String?, _ help: String) -> QEMUOption {
        QEMUOption(names: [name], argument: argument, help: help, apply: { p, v in p.arguments.ignored.append(("-\(name)", v)) })
    }
}

/// QEMU's command line (the subset small test kernels and firmware use), parsed from one table.
/// QEMU: qemu-options.hx + vl.c's option loop.
public enum QEMUCommandLine {
    /// What a command line asks for.
    public struct Parsed: Sendable {
        /// The machine options, checked later by `MachineConfiguration(qemu:)`.
        public var arguments = QEMUArguments()
        /// `-help`: print the options.
        public var help = false
        /// `-version`.
        public var version = false
        /// `-device help` / `-device NAME,help`: what to print instead of running.
        public var deviceHelp: String?
        /// The main job (no kernel): doorbell writes per path, JSON output.
        public var writes: Int?
        /// `-json`: the main job prints its results as JSON.
        public var json = false
        /// `-L help`: print the firmware search path.
        public var dataDirectoryHelp = false
        /// Only main-job flags (-n, -json) were given: run the doorbell demo, not a machine.
        public var mainJobOnly = true

        /// Nothing asked yet: the state before the first option.
        public init() {}
    }

    /// Every option vmm takes, in `-help` order; parsing and help both read this table.
    /// QEMU: qemu-options.hx.
    public static let options: [QEMUOption] = [
        .value(["kernel"], "bzImage", "use 'bzImage' as kernel image (Multiboot ELF/a.out or Linux bzImage)") { $0.arguments.kernel = $1 },
        .value(["append"], "cmdline", "use 'cmdline' as kernel command line") { $0.arguments.append = $1 },
        .value(["initrd"], "file", "use 'file' as initial ram disk (Multiboot: \"mod1 args,mod2\")") { $0.arguments.initrd = $1 },
        .value(["m", "memory"], "[size=]megs", "configure guest RAM (256, 256M, 2G)") { $0.arguments.memory = $1 },
        .value(["smp"], "[cpus=]n[,maxcpus=,sockets=,cores=,threads=]", "set the number of CPUs") { $0.arguments.smp = $1 },
        .value(["device"], "driver[,prop=value][,...]", "add device 'driver' ('-device help' lists them, 'driver,help' their properties)") { p, v throws(ConfigurationError) in
            if v == "help" || v == "?" {
                p.deviceHelp = DeviceRegistry.helpText
            } else if let driver = QEMUValueParsing.keyValues(v, impliedKey: "driver").first, driver.key == "driver",
                      v.hasSuffix(",help") || v.hasSuffix(",?") {
                guard let type = DeviceRegistry.type(named: driver.value) else {
                    throw ConfigurationError("-device \(v): '\(driver.value)' is not a valid device model name")
                }
                p.deviceHelp = type.propertyHelp
            } else {
                p.arguments.device.append(v)
            }
        },
        .value(["drive"], "file=path,if=none|virtio[,id=,format=raw,readonly=on]", "use 'file' as a drive image") { $0.arguments.drive.append($1) },
        .value(["object"], "rng-random|rng-builtin,id=id", "create a backend object (for virtio-rng-pci,rng=id)") { $0.arguments.object.append($1) },
        .value(["chardev"], "stdio|file|pipe|pty|socket|null,id=id[,path=][,host=,port=][,server=on][,wait=off]", "create a character backend") { $0.arguments.chardev.append($1) },
        .value(["serial"], "dev", "redirect the next serial port to 'dev' (stdio, file:, pipe:, pty, unix:, tcp:, chardev:id, null, none)") { $0.arguments.serial.append($1) },
        .value(["mon"], "[chardev=]id[,mode=readline|control]", "a monitor on chardev 'id' (control: QMP)") { $0.arguments.mon.append($1) },
        .value(["netdev"], "tap,id=id[,ifname=name][,script=no,downscript=no][,queues=n][,vnet_hdr=on|off][,fd=h]", "a tap network backend (-device virtio-net-pci,netdev=id)") { $0.arguments.netdev.append($1) },
        .value(["monitor"], "dev", "redirect the human monitor to 'dev' (stdio, none)") { $0.arguments.monitor = $1 },
        .value(["qmp"], "dev", "QMP monitor on 'dev' (unix:PATH,server=on,wait=off or tcp:127.0.0.1:PORT,server=on,wait=off)") { $0.arguments.qmp.append($1) },
        .flag(["S"], "do not start the CPUs until QMP 'cont'") { $0.arguments.startPaused = true },
        .value(["machine", "M"], "[type=]pc[,accel=kvm]", "select the machine (only pc)") { $0.arguments.machine.append($1) },
        .value(["accel"], "kvm", "select the accelerator (only kvm)") { $0.arguments.accel.append($1) },
        .flag(["enable-kvm"], "same as -accel kvm") { $0.arguments.enableKVM = true },
        .value(["cpu"], "model", "host, max, or a model name (the guest sees the host's CPUID)") { $0.arguments.cpu = $1 },
        .value(["name"], "string", "set the guest name") { $0.arguments.name = $1 },
        .flag(["nodefaults"], "don't create default devices (no serial port unless -serial)") { $0.arguments.nodefaults = true },
        .flag(["nographic"], "no display; serial on stdio unless -serial says otherwise") { $0.arguments.nographic = true; $0.arguments.firmware.noGraphic = true },
        .value(["display"], "none", "select the display (only none)") { $0.arguments.display = $1 },
        .value(["vnc"], "none", "VNC display (only none)") { $0.arguments.vnc = $1 },
        .value(["vga"], "type", "VGA card (there is none: anything but none is warned)") { $0.arguments.vga = $1 },
        .flag(["no-reboot"], "exit instead of rebooting") { $0.arguments.noReboot = true },
        .flag(["no-acpi"], "no ACPI tables") { $0.arguments.noACPI = true },
        .flag(["no-hpet"], "no HPET (there is none: accepted)") { _ in },
        .value(["net"], "none", "no network devices (the legacy -net nic/tap form is not supported)") { $0.arguments.net.append($1) },
        .value(["nic"], "tap,...[,model=virtio-net-pci][,mac=addr]|none", "a virtio-net NIC on a tap backend, or none") { $0.arguments.nic.append($1) },
        .value(["global"], "driver.prop=value", "set a default for a device property (others are accepted and warned about)") { $0.arguments.global.append($1) },
        .ignored("rtc", "...", "accepted; ignored with a warning (the RTC follows the host clock in UTC)"),
        .value(["boot"], "[order=drives][,menu=on|off][,reboot-timeout=ms][,strict=on|off]", "boot order and menu for firmware") { $0.arguments.firmware.boot.append($1) },
        .value(["bios"], "file", "set the filename for the BIOS (default bios-256k.bin; runs firmware also with -kernel)") { $0.arguments.firmware.bios = $1 },
        .value(["L"], "path", "set the directory for the BIOS and option ROMs ('-L help' lists the search path)") { p, v in
            if v == "help" { p.dataDirectoryHelp = true } else { p.arguments.firmware.dataDirectories.append(v) }
        },
        .value(["debugcon"], "dev", "redirect the debug console (isa-debugcon at 0xe9) to 'dev' (stdio, file:path, null)") { $0.arguments.firmware.debugcon.append($1) },
        .ignored("no-shutdown", nil, "accepted; ignored with a warning"),
        .ignored("overcommit", "...", "accepted; ignored with a warning"),
        .ignored("msg", "...", "accepted; ignored with a warning"),
        .ignored("d", "item1,...", "accepted; ignored with a warning (logging: VMM_LOG=debug)"),
        .ignored("D", "logfile", "accepted; ignored with a warning"),
        .flag(["help", "h"], "display this help and exit") { $0.help = true },
        .flag(["version"], "display version information and exit") { $0.version = true },
        .value(["n", "writes"], "N", "vmm: doorbell writes per path for the main job (no -kernel)") { p, v throws(ConfigurationError) in
            guard let n = Int(v), n > 0 else { throw ConfigurationError("-n/--writes must be a positive number") }
            p.writes = n
        },
        .flag(["json"], "vmm: print the main job's results as JSON") { $0.json = true },
    ]

    /// Parses `argv` (without the program name) with the table. `-name`, `--name` and
    /// `--name=value` are accepted; errors are one line in QEMU's wording.
    public static func parse(_ argv: [String]) throws(ConfigurationError) -> Parsed {
        var parsed = Parsed()
        var i = 0
        while i < argv.count {
            let word = argv[i]
            i += 1
            guard word.hasPrefix("-"), word.count > 1 else {
                throw ConfigurationError("\(word): a disk image needs -drive file=\(word),if=virtio,format=raw (no IDE here)")
            }
            var name = String(word.drop { $0 == "-" })
            var inline: String?
            if word.hasPrefix("--"), let eq = name.firstIndex(of: "=") {
                inline = String(name[name.index(after: eq)...])
                name = String(name[..<eq])
            }
            guard let option = options.first(where: { $0.names.contains(name) }) else {
                throw ConfigurationError("\(word): invalid option")
            }
            var value = ""
            if option.argument != nil {
                if let inline {
                    value = inline
                } else {
                    guard i < argv.count else { throw ConfigurationError("\(word): requires an argument") }
                    value = argv[i]
                    i += 1
                }
            } else if inline != nil {
                throw ConfigurationError("\(word): takes no argument")
            }
            if !["n", "writes", "json"].contains(name) { parsed.mainJobOnly = false }
            try option.apply(&parsed, value)
        }
        if parsed.dataDirectoryHelp {
            parsed.deviceHelp = FirmwareLocator.searchPath(dataDirectories: parsed.arguments.firmware.dataDirectories)
                .map { $0 + "\n" }.joined()
        }
        return parsed
    }

    /// `vmm -help`, generated from the table.
    public static func helpText(program: String = "vmm") -> String {
        var out = "usage: \(program) [options]\n\nQEMU's options (the subset small test kernels use); -name and --name are the same:\n\n"
        for o in options {
            let head = "-" + o.names[0] + (o.argument.map { " " + $0 } ?? "")
            let aliases = o.names.dropFirst().map { "-" + $0 }.joined(separator: ", ")
            out += head + (head.count < 28 ? String(repeating: " ", count: 28 - head.count) : "\n" + String(repeating: " ", count: 28))
            out += o.help + (aliases.isEmpty ? "" : " (also \(aliases))") + "\n"
        }
        return out
    }
}
