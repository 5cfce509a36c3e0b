import Foundation
import Loader
import Machine

/// The QEMU command line, as `vmm` takes it, into a `MachineConfiguration`: every value parser
/// (`-m` sizes with units and fractions, `-smp` topology, `-device`/`-drive`/`-object`/
/// `-machine`/`-accel`/`-cpu` key=value lists with `,,` escapes, `-serial`, `-monitor`, …)
/// and the cross-checks between options, plus the `-initrd` module list.
///
/// Input: the argument vector, NUL-separated. Flags are mapped onto `QEMUArguments` the way
/// `vmm`'s `QEMUOptions` declares them (single or double dash; every option takes the next
/// argument as its value); an unknown flag or a missing value ends the run as an error, as
/// ArgumentParser reports it. (`QEMUOptions` itself lives in the `vmm` executable, which a
/// library cannot import.)
///
/// Checks: nothing traps; the result is either a configuration within the documented bounds
/// (RAM 1 MiB to 1 TiB, 1 ≤ CPUs ≤ max CPUs ≤ 255, isa-debug-exit ports inside 64 KiB, every
/// virtio-blk device naming a declared drive) or a `ConfigurationError` whose description is
/// non-empty first line (what `vmm` prints).
func fuzzCommandLine(_ data: [UInt8]) throws(FuzzFailure) {
    let name = FuzzTarget.cmdline.rawValue
    let argv = data.split(separator: 0, omittingEmptySubsequences: false).map { String(decoding: $0, as: UTF8.self) }
    guard let arguments = CommandLineFlags.parse(argv) else { return }
    let config: MachineConfiguration
    do {
        config = try MachineConfiguration(qemu: arguments)
    } catch {
        // `vmm` prints the first line of the description (a value the user gave may itself hold
        // a newline, echoed as QEMU echoes it): that line must say something.
        let text = error.description
        let line = text.split(separator: "\n", omittingEmptySubsequences: false).first ?? ""
        try require(!line.trimmingCharacters(in: .whitespaces).isEmpty, name, "error has no first line: \(text.debugDescription)")
        return
    }
    try require((1 << 20...1 << 40).contains(config.memorySize), name, "RAM size \(config.memorySize) accepted")
    try require(config.cpuCount >= 1 && config.cpuCount <= config.maxCPUs && config.maxCPUs <= 255, name,
                "CPUs \(config.cpuCount)/\(config.maxCPUs) accepted")
    for d in config.devices {
        switch d {
        case .isaDebugExit(let base, let size):
            try require(size >= 1 && size <= 8 && Int(base) + Int(size) <= 0x10000, name, "isa-debug-exit \(base)+\(size) accepted")
        case .virtioBlockPCI(let drive, _):
            try require(config.drives.contains { $0.id == drive }, name, "virtio-blk-pci drive \(drive) is not declared")
        default: break
        }
    }
    if let initrd = config.initrd {
        for m in MultibootModule.parseList(initrd) {
            try require(!m.commandLine.isEmpty && !m.path.contains(" "), name, "module entry \(m.commandLine.debugDescription)")
        }
    }
}

/// `vmm`'s QEMU-form flags (`Sources/vmm/QEMUOptions.swift`) onto `QEMUArguments`.
enum CommandLineFlags {
    static let switches: Set<String> = ["enable-kvm", "nodefaults", "nographic", "no-reboot", "no-acpi", "no-hpet", "no-shutdown", "json"]
    static let options: Set<String> = ["kernel", "append", "initrd", "m", "smp", "device", "serial", "machine", "M", "accel", "cpu",
                                       "name", "display", "vnc", "global", "monitor", "net", "nic", "vga", "object", "rtc", "boot",
                                       "overcommit", "msg", "d", "D", "drive", "n", "writes"]

    /// The arguments, or nil where ArgumentParser would stop with its own one-line error.
    static func parse(_ argv: [String]) -> QEMUArguments? {
        var a = QEMUArguments()
        var i = 0
        while i < argv.count {
            let token = argv[i]
            i += 1
            guard token.hasPrefix("-") else { return nil }              // no positional arguments
            let flag = String(token.drop { $0 == "-" })
            if switches.contains(flag) {
                switch flag {
                case "enable-kvm": a.enableKVM = true
                case "nodefaults": a.nodefaults = true
                case "nographic": a.nographic = true
                case "no-reboot": a.noReboot = true
                case "no-acpi": a.noACPI = true
                case "no-shutdown": a.ignored.append(("-no-shutdown", ""))
                default: break
                }
                continue
            }
            guard options.contains(flag), i < argv.count else { return nil }
            let v = argv[i]
            i += 1
            switch flag {
            case "kernel": a.kernel = v
            case "append": a.append = v
            case "initrd": a.initrd = v
            case "m": a.memory = v
            case "smp": a.smp = v
            case "device": a.device.append(v)
            case "serial": a.serial = v
            case "machine", "M": a.machine.append(v)
            case "accel": a.accel.append(v)
            case "cpu": a.cpu = v
            case "name": a.name = v
            case "display": a.display = v
            case "vnc": a.vnc = v
            case "global": a.global.append(v)
            case "monitor": a.monitor = v
            case "net", "nic": a.net.append(v)
            case "vga": a.vga = v
            case "object": a.object.append(v)
            case "drive": a.drive.append(v)
            case "rtc", "boot", "overcommit", "msg", "d", "D": a.ignored.append(("-" + flag, v))
            default: break
            }
        }
        return a
    }
}
