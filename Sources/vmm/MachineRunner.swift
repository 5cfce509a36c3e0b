import Devices
import Foundation
import Machine
import Memory

/// Runs a configured machine to completion and returns the process exit status.
enum MachineRunner {
    static func run(_ config: MachineConfiguration) throws -> Int32 {
        for w in config.warnings { printError("vmm: warning: \(w)") }
        let machine = try PCMachine(config)
        if config.monitor == .stdio {
            startMonitor(machine)
        } else if config.serial == .stdio, let serial = machine.devices.serial {
            startSerialInput(serial)
        }
        return machine.run()
    }

    /// `-monitor stdio`: QEMU's human monitor on standard input/output, on its own thread.
    static func startMonitor(_ machine: PCMachine) {
        let system = machine.memorySystem
        let monitor = HumanMonitor(providers: HumanMonitor.Providers(
            memoryTree: { flat in flat ? MemoryTreeDump.flat(system) : MemoryTreeDump.tree(system) },
            ioeventfds: { MemoryTreeDump.ioeventfds(system) },
            status: { "VM status: running\n" },
            quit: { machine.requestExit(status: 0, reason: "monitor quit") },
            pci: { machine.devices.pci.info() }))
        let thread = Thread {
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
        thread.start()
    }
}

/// `-serial stdio` is two-way: what arrives on standard input goes to the UART's receiver,
/// on its own thread (stdin at EOF, e.g. /dev/null, just ends it).
func startSerialInput(_ serial: SerialPort) {
    let thread = Thread {
        let input = FileHandle.standardInput
        while true {
            let data = input.availableData
            if data.isEmpty { return }
            _ = serial.receive([UInt8](data))
        }
    }
    thread.start()
}

/// Writes to standard output unbuffered (the serial console shares it).
func writeOut(_ text: String) {
    FileHandle.standardOutput.write(Data(text.utf8))
}
