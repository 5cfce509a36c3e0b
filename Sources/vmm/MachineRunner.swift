import Devices
import Machine
import Memory
import VMMSys
#if canImport(Glibc)
import Glibc
#endif

/// Runs a configured machine to completion and returns the process exit status.
enum MachineRunner {
    static func run(_ config: MachineConfiguration) throws -> Int32 {
        for w in config.warnings { printError("vmm: warning: \(w)") }
        let machine = try PCMachine(config)
        if config.monitor == .stdio {
            try startMonitor(machine)
        } else if let id = config.stdioSerialChardev, let serial = machine.devices.serial(chardev: id) {
            try startSerialInput(serial)
        }
        return machine.run()
    }

    /// `-monitor stdio`: QEMU's human monitor on standard input/output, on its own thread.
    static func startMonitor(_ machine: PCMachine) throws {
        let system = machine.memorySystem
        let monitor = HumanMonitor(providers: HumanMonitor.Providers(
            memoryTree: { flat in flat ? MemoryTreeDump.flat(system) : MemoryTreeDump.tree(system) },
            ioeventfds: { MemoryTreeDump.ioeventfds(system) },
            status: { "VM status: running\n" },
            quit: { machine.requestExit(status: 0, reason: "monitor quit") },
            pci: { machine.devices.pci.info() }))
        try HostThread.start(name: "monitor") {
            writeOut(HumanMonitor.banner + "\n")
            while true {
                writeOut(HumanMonitor.prompt)
                guard let line = readLine() else { return }
                switch monitor.execute(line) {
                case .output(let text): writeOut(text)
                case .quit: return
                }
            }
        }
    }
}

/// A serial port on stdio is two-way: what arrives on standard input goes to the UART's
/// receiver, on its own thread (stdin at EOF, e.g. /dev/null, just ends it).
func startSerialInput(_ serial: SerialPort) throws {
    try HostThread.start(name: "serial-input") {
        while true {
            let bytes = readSome(0)
            if bytes.isEmpty { return }
            _ = serial.receive(bytes)
        }
    }
}
