import Foundation
import Loader
import Machine

/// The QEMU command line, as `vmm` takes it, into a `MachineConfiguration`: the one option
/// table (`QEMUCommandLine`), every value parser (`-m` sizes with units and fractions, `-smp`
/// topology, `-device` properties through the device registry, `-drive`/`-object`/`-chardev`/
/// `-machine`/`-accel`/`-cpu` key=value lists with `,,` escapes, `-serial`, `-monitor`, `-qmp`, …)
/// and the cross-checks between options, plus the `-initrd` module list.
///
/// Input: the argument vector, NUL-separated, exactly as `vmm` receives it.
///
/// Checks: nothing traps; the result is either a configuration within the documented bounds
/// (RAM 1 MiB to 1 TiB, 1 ≤ CPUs ≤ max CPUs ≤ 255, isa-debug-exit ports inside 64 KiB, every
/// device a registered type whose linked drives exist) or a `ConfigurationError` that is one
/// line saying something (what `vmm` prints).
func fuzzCommandLine(_ data: [UInt8]) throws(FuzzFailure) {
    let name = FuzzTarget.cmdline.rawValue
    let argv = data.split(separator: 0, omittingEmptySubsequences: false).map { String(decoding: $0, as: UTF8.self) }
    let config: MachineConfiguration
    do {
        let parsed = try QEMUCommandLine.parse(argv)
        config = try MachineConfiguration(qemu: parsed.arguments)
    } catch {
        // `vmm` prints the description as its one line: a value the user gave may hold a
        // newline or another control character, which the message escapes.
        let text = error.description
        try require(!text.trimmingCharacters(in: .whitespaces).isEmpty, name, "error says nothing")
        try require(!text.unicodeScalars.contains { $0.properties.generalCategory == .control }, name,
                    "error is not one line: \(text.debugDescription)")
        return
    }
    try require((1 << 20...1 << 40).contains(config.memorySize), name, "RAM size \(config.memorySize) accepted")
    try require(config.cpuCount >= 1 && config.cpuCount <= config.maxCPUs && config.maxCPUs <= 255, name,
                "CPUs \(config.cpuCount)/\(config.maxCPUs) accepted")
    for d in config.devices {
        try require(DeviceRegistry.type(named: d.driver) != nil, name, "device \(d.driver) is not registered")
        switch d.driver {
        case "isa-debug-exit":
            let base = d.unsigned("iobase"), size = d.unsigned("iosize")
            try require(size >= 1 && size <= 4 && base + size <= 0x10000, name, "isa-debug-exit \(base)+\(size) accepted")
        case "virtio-blk-pci":
            let drive = d.string("drive") ?? ""
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
