import KVMAccel
import Memory
import VMMSys

/// The main job: N doorbell writes over each path — port I/O and MMIO, with no ioeventfd, a
/// wildcard one, a datamatch one, and a datamatch one the guest misses — counting userspace
/// exits and eventfd signals, and timing the loop.
package enum DoorbellBenchmark {
    package struct PathResult: Sendable, Equatable {
        package var path: String
        package var writes: UInt64
        package var userspaceExits: UInt64
        package var eventfdSignals: UInt64
        package var nsPerWrite: Double
    }

    /// How one path is set up.
    struct Path {
        var name: String
        var mmio: Bool
        /// nil: no ioeventfd; else (size, matchData).
        var eventfd: (size: Int, matchData: Bool)?
        var value: UInt64
    }

    static let matchValue: UInt64 = 0x42

    static func paths(fastMMIO: Bool) -> [Path] {
        [
            Path(name: "pio-no-eventfd", mmio: false, eventfd: nil, value: matchValue),
            Path(name: "pio-wildcard-eventfd", mmio: false, eventfd: (1, false), value: matchValue),
            Path(name: "pio-datamatch-eventfd", mmio: false, eventfd: (1, true), value: matchValue),
            Path(name: "pio-datamatch-miss", mmio: false, eventfd: (1, true), value: matchValue + 1),
            Path(name: "mmio-no-eventfd", mmio: true, eventfd: nil, value: matchValue),
            Path(name: "mmio-wildcard-eventfd", mmio: true, eventfd: (fastMMIO ? 0 : 1, false), value: matchValue),
            Path(name: "mmio-datamatch-eventfd", mmio: true, eventfd: (1, true), value: matchValue),
        ]
    }

    /// Runs every path with `writes` doorbell writes each.
    package static func run(writes: UInt64, machine: DoorbellMachine? = nil) throws -> [PathResult] {
        let m = try machine ?? DoorbellMachine()
        var results: [PathResult] = []
        for p in paths(fastMMIO: m.accelerator.anyLengthIoeventfds) {
            results.append(try run(p, writes: writes, on: m))
        }
        return results
    }

    static func run(_ p: Path, writes: UInt64, on m: DoorbellMachine) throws -> PathResult {
        let region = p.mmio ? m.mmioDoorbell : m.pioDoorbell
        let notifier = try EventNotifier()
        if let e = p.eventfd {
            try region.addEventfd(offset: 0, size: e.size, matchData: e.matchData, data: matchValue, notifier: notifier)
        }
        defer {
            if let e = p.eventfd {
                try? region.delEventfd(offset: 0, size: e.size, matchData: e.matchData, data: matchValue, notifier: notifier)
            }
        }
        let runner = m.runners[0]
        let exitsBefore = p.mmio ? runner.counters.mmio : runner.counters.portIO
        let clock = ContinuousClock()
        try m.prepare(p.mmio ? .mmio8 : .pio8, rax: p.value, rcx: writes, rdx: DoorbellMachine.doorbellPort,
                      rbx: DoorbellMachine.doorbellMMIO)
        let start = clock.now
        let reason = runner.run()
        let elapsed = clock.now - start
        guard reason == .halted else { throw MachineError("doorbell guest stopped: \(reason)") }
        let exits = (p.mmio ? runner.counters.mmio : runner.counters.portIO) - exitsBefore
        let ns = Double(elapsed.components.seconds) * 1e9 + Double(elapsed.components.attoseconds) / 1e9
        return PathResult(path: p.name, writes: writes, userspaceExits: exits, eventfdSignals: notifier.testAndClear(),
                          nsPerWrite: writes > 0 ? ns / Double(writes) : 0)
    }

    /// `{"paths":[{"path":…,"writes":N,"userspaceExits":N,"eventfdSignals":N,"nsPerWrite":x}]}`.
    package static func json(_ results: [PathResult]) -> String {
        let items = results.map {
            "{\"path\":\"\($0.path)\",\"writes\":\($0.writes),\"userspaceExits\":\($0.userspaceExits),"
                + "\"eventfdSignals\":\($0.eventfdSignals),\"nsPerWrite\":\(fixed($0.nsPerWrite, 1))}"
        }
        return "{\"paths\":[\(items.joined(separator: ","))]}"
    }

    /// A human-readable table.
    package static func table(_ results: [PathResult]) -> String {
        var lines = [padded("path", 24) + padded("writes", 10) + padded("userspace exits", 17) + padded("eventfd signals", 17) + "ns/write"]
        for r in results {
            lines.append(padded(r.path, 24) + padded("\(r.writes)", 10) + padded("\(r.userspaceExits)", 17)
                + padded("\(r.eventfdSignals)", 17) + fixed(r.nsPerWrite, 0))
        }
        return lines.joined(separator: "\n")
    }
}
