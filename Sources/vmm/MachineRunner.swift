import Devices
import Machine
import Memory
import QMP
import VMMSys
#if canImport(Glibc)
import Glibc
#endif

/// Runs a configured machine to completion and returns the process exit status.
enum MachineRunner {
    static func run(_ config: MachineConfiguration) throws -> Int32 {
        for w in config.warnings { printError("vmm: warning: \(w)") }
        let machine = try PCMachine(config)
        let monitor = machine.humanMonitor
        var servers: [QMPServer] = []
        for spec in config.qmp {
            let listener: SocketListener
            do { listener = try SocketListener(spec.address) } catch {
                throw ConfigurationError("-qmp \(spec.address): \(error)")
            }
            let server = QMPServer(listener: listener, commands: machine.qmpCommands(monitor: monitor))
            machine.events.subscribe { name, data in server.emit(name, data: data) }
            try server.start()
            servers.append(server)
        }
        for (server, spec) in zip(servers, config.qmp) where spec.wait { server.waitForFirstClient() }
        if config.monitor == .stdio {
            try startMonitor(monitor)
        } else if let id = config.stdioSerialChardev, let serial = machine.devices.serial(chardev: id) {
            try startSerialInput(serial)
        }
        let status = machine.run()
        for s in servers { s.stop() }
        return status
    }

    /// `-monitor stdio`: QEMU's human monitor on standard input/output, on its own thread.
    static func startMonitor(_ monitor: HumanMonitor) throws {
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
