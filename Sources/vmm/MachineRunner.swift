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
        // QMP on `-qmp` sockets and on `-mon chardev=X,mode=control` socket chardevs: the same
        // server either way, as QEMU's monitor_init_qmp() takes any chardev.
        var servers: [(server: QMPServer, wait: Bool)] = []
        func serveQMP(on address: SocketAddress, wait: Bool, option: String) throws {
            let listener: SocketListener
            do { listener = try SocketListener(address) } catch {
                throw ConfigurationError("\(option): \(error)")
            }
            let server = QMPServer(listener: listener, commands: machine.qmpCommands(monitor: monitor))
            machine.events.subscribe { name, data in server.emit(name, data: data) }
            try server.start()
            servers.append((server, wait))
        }
        for spec in config.qmp { try serveQMP(on: spec.address, wait: spec.wait, option: "-qmp \(spec.address)") }
        for m in config.controlMonitorSockets {
            try serveQMP(on: m.address, wait: m.wait, option: "-chardev socket,id=\(m.chardev)")
        }
        for s in servers where s.wait { s.server.waitForFirstClient() }
        // Human monitors on chardevs (`-mon chardev=X`, mode=readline).
        try machine.startChardevMonitors(monitor)
        if config.monitor == .stdio {
            try startMonitor(monitor)
        } else if let id = config.stdioSerialChardev, let serial = machine.devices.serial(chardev: id) {
            try startSerialInput(serial)
        }
        let status = machine.run()
        for s in servers { s.server.stop() }
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
