import Memory
import QMP

extension PCMachine {
    /// The human monitor for this machine (`-monitor stdio`, QMP human-monitor-command).
    public var humanMonitor: HumanMonitor {
        let system = memorySystem
        return HumanMonitor(providers: HumanMonitor.Providers(
            memoryTree: { flat in flat ? MemoryTreeDump.flat(system) : MemoryTreeDump.tree(system) },
            ioeventfds: { MemoryTreeDump.ioeventfds(system) },
            status: { [self] in "VM status: \(runState == .running ? "running" : runState == .prelaunch ? "paused (prelaunch)" : runState.rawValue)\n" },
            quit: { [self] in quit() },
            pci: { [self] in devices.pci.info() },
            stop: { [self] in pause() },
            cont: { [self] in resume() },
            systemReset: { [self] in systemReset(reason: .hostQMP) },
            systemPowerdown: { [self] in powerdown() }))
    }

    /// The QMP commands for this machine.
    public func qmpCommands(monitor: HumanMonitor) -> [QMPCommand] { QMPCommands.all(for: self, monitor: monitor) }
}
