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
            systemPowerdown: { [self] in powerdown() },
            // HMP prints QEMU's error text. QEMU: hmp_system_wakeup().
            systemWakeup: { [self] in requestWakeup(.other) ? "" : "Error: Unable to wake up: guest is not in suspended state\n" }))
    }

    /// The QMP commands for this machine.
    public func qmpCommands(monitor: HumanMonitor) -> [QMPCommand] { QMPCommands.all(for: self, monitor: monitor) }
}
