import Devices
import Memory
import Synchronization
import VMMSys

/// QEMU's human monitor on a chardev (`-mon chardev=ID`, mode=readline): the banner and a
/// prompt when the far side opens (each socket client gets its own), then one command per line.
/// Lines are taken as they come (no echo, no history: the far side's terminal edits them).
/// QEMU: monitor/hmp.c over a CharBackend (monitor_read(), monitor_event()).
final class ChardevMonitor: ChardevFrontend {
    let monitor: HumanMonitor
    /// Weak: the chardev keeps its frontend, the I/O thread keeps the chardev.
    private weak let chardev: Chardev?
    private let line = Mutex<[UInt8]>([])
    /// Longest command line kept; a client sending more without a newline loses the excess.
    static let maxLine = 4096

    init(monitor: HumanMonitor, chardev: Chardev) {
        self.monitor = monitor
        self.chardev = chardev
    }

    func chardevCanReceive() -> Int { 4096 }

    func chardevReceive(_ bytes: ArraySlice<UInt8>) {
        var commands: [String] = []
        line.withLock { l in
            for b in bytes {
                if b == UInt8(ascii: "\n") {
                    commands.append(String(decoding: l.filter { $0 != UInt8(ascii: "\r") }, as: UTF8.self))
                    l.removeAll(keepingCapacity: true)
                } else if l.count < Self.maxLine {
                    l.append(b)
                }
            }
        }
        for command in commands {
            switch monitor.execute(command) {
            case .output(let text): chardev?.write(Array((text + HumanMonitor.prompt).utf8))
            case .quit: return
            }
        }
    }

    func chardevEvent(_ event: ChardevEvent) {
        guard event == .opened else { return }
        line.withLock { $0.removeAll() }
        chardev?.write(Array((HumanMonitor.banner + "\n" + HumanMonitor.prompt).utf8))
    }
}

extension PCMachine {
    /// Starts `monitor` on every chardev a human monitor names (`-mon chardev=ID`,
    /// mode=readline); QMP ones (mode=control) are served by the QMP server on the chardev's
    /// socket (`MachineConfiguration.controlMonitorSockets`). Call before `run()`: the monitors
    /// read on the I/O thread, which `run()` starts. QEMU: monitor_init_hmp().
    public func startChardevMonitors(_ monitor: HumanMonitor) throws {
        for spec in configuration.chardevMonitors where spec.mode == .readline {
            guard let chardevSpec = configuration.chardevs.first(where: { $0.id == spec.chardev }) else {
                throw MachineError("-mon chardev=\(spec.chardev): chardev \"\(spec.chardev)\" not found")
            }
            let chardev = try chardevSpec.open(readsStdin: true, logger: logger)
            let frontend = ChardevMonitor(monitor: monitor, chardev: chardev)
            do { try chardev.attach(frontend, ioThread: devices.ioThread, retain: true) } catch {
                throw MachineError("-mon chardev=\(spec.chardev): \(error)")
            }
        }
    }
}
