import Devices
import Memory
import QMP
import VirtIO

/// The QMP commands of the pc machine, answering in QEMU 7.2's shapes (members listed in
/// QEMU's schema order; the serializer prints them in QEMU's QDict order).
/// QEMU: qapi/*.json and their qmp_* implementations.
enum QMPCommands {
    static func all(for machine: PCMachine, monitor: HumanMonitor) -> [QMPCommand] {
        var commands: [QMPCommand] = [
            QMPCommand("query-version") { _ in
                .object([("qemu", .object([("major", 7), ("minor", 2), ("micro", 0)])),
                         ("package", .string("swift-vmm \(VMMVersion.current)"))])
            },
            QMPCommand("query-status") { _ in
                let state = machine.runState
                return .object([("running", .bool(state == .running)), ("singlestep", false), ("status", .string(state.rawValue))])
            },
            QMPCommand("query-name") { _ in
                .object(machine.configuration.name.map { [("name", JSONValue.string($0))] } ?? [])
            },
            QMPCommand("query-kvm") { _ in .object([("enabled", true), ("present", true)]) },
            QMPCommand("query-cpus-fast") { _ in .array(cpus(machine)) },
            QMPCommand("query-pci") { _ in .array([.object([("bus", 0), ("devices", .array(pciDevices(machine)))])]) },
            QMPCommand("query-block") { _ in .array(blockDevices(machine)) },
            QMPCommand("stop") { _ in machine.pause(); return .object([]) },
            QMPCommand("cont") { _ in machine.resume(); return .object([]) },
            QMPCommand("system_reset") { _ in machine.systemReset(reason: .hostQMP); return .object([]) },
            QMPCommand("system_powerdown") { _ in machine.powerdown(); return .object([]) },
            // QEMU: qmp_system_wakeup() → qemu_system_wakeup_request(QEMU_WAKEUP_REASON_OTHER).
            QMPCommand("system_wakeup") { _ throws(QMPError) in
                guard machine.requestWakeup(.other) else { throw QMPError("Unable to wake up: guest is not in suspended state") }
                return .object([])
            },
            QMPCommand("quit") { _ in machine.quit(); return .object([]) },
            QMPCommand("human-monitor-command", arguments: [QMPArgument("command-line", .string, required: true),
                                                            QMPArgument("cpu-index", .int)]) { args in
                // QMP returns HMP's text with CRLF line ends, as QEMU's monitor buffer does.
                switch monitor.execute(args["command-line"]?.string ?? "") {
                case .output(let text): return .string(text.split(separator: "\n", omittingEmptySubsequences: false).joined(separator: "\r\n"))
                case .quit: return .string("")
                }
            },
            QMPCommand("x-query-ioeventfds") { _ in .array(ioeventfds(machine)) },
        ]
        let names = commands.map(\.name) + ["qmp_capabilities", "query-commands"]
        commands.append(QMPCommand("query-commands") { _ in
            .array(names.sorted().map { .object([("name", .string($0))]) })
        })
        return commands
    }

    /// QEMU: qmp_query_cpus_fast(); x86 props socket/core/thread ids for `-smp N` (one socket,
    /// N cores, one thread each).
    static func cpus(_ machine: PCMachine) -> [JSONValue] {
        machine.runners.enumerated().map { i, runner in
            .object([
                ("cpu-index", .int(Int64(i))),
                ("qom-path", .string("/machine/unattached/device[\(i == 0 ? 0 : i + 1)]")),
                ("thread-id", .int(Int64(runner.threadID ?? 0))),
                ("props", .object([("socket-id", 0), ("core-id", .int(Int64(i))), ("thread-id", 0)])),
                ("target", "x86_64"),
            ])
        }
    }

    /// QEMU: qmp_query_pci() → qmp_query_pci_device().
    static func pciDevices(_ machine: PCMachine) -> [JSONValue] {
        machine.devices.pci.host.functions.map { slot, function, d in
            let ids = d.configRead(offset: 0, size: 4), sub = d.configRead(offset: 0x2c, size: 4)
            let cls = d.configRead(offset: 0x0a, size: 2)
            var classInfo: [(String, JSONValue)] = [("class", .int(Int64(cls)))]
            if let name = PCIBus.classNames[cls] { classInfo.append(("desc", .string(name))) }
            var members: [(String, JSONValue)] = [
                ("bus", 0), ("slot", .int(Int64(slot))), ("function", .int(Int64(function))),
                ("class_info", .object(classInfo)),
                ("id", .object([("device", .int(Int64(ids >> 16))), ("vendor", .int(Int64(ids & 0xffff))),
                                ("subsystem", .int(Int64(sub >> 16))), ("subsystem-vendor", .int(Int64(sub & 0xffff)))])),
            ]
            let pin = d.configRead(offset: 0x3d, size: 1)
            if pin != 0 { members.append(("irq", .int(Int64(d.configRead(offset: 0x3c, size: 1))))) }
            members.append(("irq_pin", .int(Int64(pin))))
            var regions: [JSONValue] = []
            for (i, bar) in d.bars.enumerated() {
                guard let bar else { continue }
                let address: JSONValue = d.barAddress(i).map { .int(Int64(bitPattern: $0)) } ?? .int(-1)
                var r: [(String, JSONValue)] = [("bar", .int(Int64(i))), ("type", bar.kind.isIO ? "io" : "memory"),
                                                ("address", address), ("size", .int(Int64(bar.size)))]
                if !bar.kind.isIO {
                    r.append(("prefetch", .bool(bar.kind.isPrefetchable)))
                    r.append(("mem_type_64", .bool(bar.kind.is64Bit)))
                }
                regions.append(.object(r))
            }
            members.append(("regions", .array(regions)))
            members.append(("qdev_id", ""))
            return .object(members)
        }
    }

    /// QEMU: qmp_query_block() for raw images: the fields a management tool reads.
    static func blockDevices(_ machine: PCMachine) -> [JSONValue] {
        machine.devices.realized.compactMap { instance, device -> JSONValue? in
            guard let pci = device as? VirtIOPCI, let block = pci.device as? VirtIOBlock else { return nil }
            let drive = instance.string("drive") ?? ""
            let size = Int64(clamping: block.capacity &* VirtIOBlock.sectorSize)
            let image: JSONValue = .object([("filename", .string(block.path)), ("format", "raw"),
                                            ("virtual-size", .int(size)), ("dirty-flag", false)])
            let inserted: JSONValue = .object([
                ("file", .string(block.path)), ("ro", .bool(block.readOnly)), ("drv", "raw"), ("backing_file_depth", 0),
                ("encrypted", false), ("detect_zeroes", "off"), ("bps", 0), ("bps_rd", 0), ("bps_wr", 0),
                ("iops", 0), ("iops_rd", 0), ("iops_wr", 0), ("image", image), ("write_threshold", 0),
                ("cache", .object([("writeback", true), ("direct", false), ("no-flush", false)])),
            ])
            return .object([("device", .string(drive)), ("qdev", .string("/machine/peripheral-anon/device[\(0)]/virtio-backend")),
                            ("type", "unknown"), ("removable", false), ("locked", false), ("inserted", inserted),
                            ("io-status", "ok")])
        }
    }

    /// vmm's own unstable command: every ioeventfd, who signals it, and userspace hits.
    static func ioeventfds(_ machine: PCMachine) -> [JSONValue] {
        [machine.memory, machine.io].flatMap { space -> [JSONValue] in
            let refused = space.refusedIoeventfds
            return space.ioeventfds.map { fd in
                let user = !space.acceleratorHandlesIoeventfds
                    || refused.contains { $0.start == fd.start && $0.size == fd.size && $0.notifier === fd.notifier }
                var m: [(String, JSONValue)] = [
                    ("address-space", .string(space.name)), ("address", .int(Int64(bitPattern: fd.start))),
                    ("size", .int(Int64(fd.size))), ("datamatch", fd.matchData ? .int(Int64(bitPattern: fd.data)) : .null),
                    ("signalled-by", user ? "userspace" : "kernel"),
                ]
                if user { m.append(("hits", .int(Int64(clamping: space.counters.eventfdSignals(of: fd.notifier))))) }
                return .object(m)
            }
        }
    }
}
