import ArgumentParser
import Machine
import Memory
import VMMSys

/// `vmm mtree [-f]`: QEMU's `info mtree` for the doorbell example machine's address spaces.
struct MtreeCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "mtree", abstract: "Print the example machine's memory tree as QEMU's 'info mtree' does.")

    @Flag(name: .customShort("f"), help: "Print the flat views (info mtree -f) and ioeventfds.")
    var flat = false

    func run() throws {
        let system = MemorySystem()
        let machine = try DoorbellMachine(memorySystem: system)
        try machine.pioDoorbell.addEventfd(offset: 0, size: 1, matchData: true, data: 0x42, notifier: EventNotifier())
        print(flat ? MemoryTreeDump.flat(system) + MemoryTreeDump.ioeventfds(system) : MemoryTreeDump.tree(system), terminator: "")
    }
}
