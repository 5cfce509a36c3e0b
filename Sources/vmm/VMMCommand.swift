import ArgumentParser
import Machine

/// `vmm`'s native subcommands that are not a machine run: `mtree` and `bench`. The QEMU form
/// (`vmm -kernel K …`), the native run (`vmm run --kernel K …`) and the no-argument main job go
/// through the one option table, `QEMUCommandLine`; `Entry.swift` picks by the first argument.
struct VMMCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "vmm",
        abstract: "A KVM virtual machine monitor with exitless (ioeventfd/irqfd) device I/O.",
        subcommands: [MtreeCommand.self, BenchCommand.self])

    /// Names that select these subcommands.
    static var subcommandNames: Set<String> {
        Set(configuration.subcommands.compactMap { $0.configuration.commandName })
    }
}
