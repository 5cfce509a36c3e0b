import ArgumentParser
import Machine

/// `vmm`'s native subcommands. The QEMU-compatible form (and the no-argument main job) is
/// `QEMUCommand`; `Entry.swift` picks one by the first argument.
struct VMMCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "vmm",
        abstract: "A KVM virtual machine monitor with exitless (ioeventfd/irqfd) device I/O.",
        discussion: """
            With no arguments, runs the bundled doorbell guest and prints the cost of each \
            doorbell path (-n/--writes N, --json). With QEMU's options (-kernel, -append, -initrd, \
            -m, -smp, -device, -serial, -machine, -accel, -cpu, -monitor, -no-reboot, ...), runs a \
            small test kernel as qemu-system-x86_64 would: see 'vmm -help'.
            """,
        subcommands: [RunCommand.self, MtreeCommand.self, BenchCommand.self])

    /// Names that select the native form.
    static var subcommandNames: Set<String> {
        Set(configuration.subcommands.compactMap { $0.configuration.commandName } + ["help", "--help", "-h"])
    }
}

/// `vmm [QEMU options]`: with a kernel, runs it as qemu-system-x86_64 would; with nothing,
/// the main job (the doorbell benchmark on the bundled guest).
struct QEMUCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "vmm",
        abstract: "QEMU-compatible form: vmm -kernel K [-append ARGS] [-device ...] ...; no arguments: doorbell benchmark.")

    @OptionGroup var qemu: QEMUOptions

    @Option(name: [.customShort("n"), .customLong("writes")], help: "Doorbell writes per path (main job).")
    var writes: Int = 100_000

    @Flag(name: .customLong("json"), help: "Print the main job's results as JSON.")
    var json = false

    mutating func run() throws {
        if qemu.device.contains("help") || qemu.device.contains("?") {
            print(QEMUValueParsing.deviceHelp, terminator: "")
            return
        }
        let config = try MachineConfiguration(qemu: qemu.arguments)
        if config.kernel != nil {
            throw ExitStatus(code: try MachineRunner.run(config))
        }
        guard writes > 0 else { throw ValidationError("-n/--writes must be a positive number") }
        try MainJob.run(writes: UInt64(writes), json: json)
    }
}
