import ArgumentParser
import Machine

/// `vmm run`: the native form of the QEMU-compatible command line. Both parse into the same
/// `MachineConfiguration`, so `vmm run --kernel K --device pci-testdev` and
/// `vmm -kernel K -device pci-testdev` build the same machine.
struct RunCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "run",
        abstract: "Run a kernel (native spelling of the QEMU-compatible options).")

    @Option(help: "Kernel image: Multiboot or a Linux bzImage.")
    var kernel: String
    @Option(parsing: .unconditional, help: "Kernel command line.")
    var append: String?
    @Option(help: "Multiboot modules (\"file args,file2\") or a Linux initrd.")
    var initrd: String?
    @Option(name: [.short, .long], help: "RAM size (256, 256M, 2G).")
    var memory: String?
    @Option(help: "CPUs: n[,maxcpus=m].")
    var smp: String?
    @Option(help: "isa-debug-exit,iobase=,iosize= | pc-testdev | pci-testdev | virtio-rng-pci | virtio-blk-pci,drive=ID (repeatable).")
    var device: [String] = []
    @Option(help: "file=PATH,if=none|virtio,id=ID,format=raw[,readonly=on] (repeatable).")
    var drive: [String] = []
    @Option(help: "stdio | file:PATH | none.")
    var serial: String = "stdio"
    @Option(help: "stdio | none.")
    var monitor: String?
    @Flag(help: "Exit instead of rebooting.")
    var noReboot = false
    @Option(help: "Guest name.")
    var name: String?

    /// The same configuration the QEMU form would build.
    func machineConfiguration() throws(ConfigurationError) -> MachineConfiguration {
        try MachineConfiguration(qemu: QEMUArguments(
            kernel: kernel, append: append, initrd: initrd, memory: memory, smp: smp, device: device,
            serial: serial, name: name, nodefaults: true, noReboot: noReboot, monitor: monitor, drive: drive))
    }

    mutating func run() throws {
        let config = try machineConfiguration()
        throw ExitStatus(code: try MachineRunner.run(config))
    }
}
