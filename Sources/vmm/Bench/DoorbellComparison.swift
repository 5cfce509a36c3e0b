import VMMSys
import ProcessSupport

/// `vmm bench doorbell`: the same bench kernel under `vmm` and `qemu-system-x86_64`, alternating,
/// in one invocation; cycles per write on each pci-testdev path for both, their ratio, start-up
/// time and peak memory.
struct DoorbellComparison {
    /// The flags both VMMs get, exactly as a QEMU user writes them.
    static func commonFlags(kernel: String, append: String) -> [String] {
        [
            "-machine", "accel=kvm", "-nodefaults", "-display", "none", "-serial", "stdio",
            "-device", "isa-debug-exit,iobase=0xf4,iosize=0x4", "-device", "pc-testdev",
            "-device", "pci-testdev", "-kernel", kernel, "-append", append,
        ]
    }

    /// The smallest command line that runs a kernel and lets it end the VM: what start-up
    /// is measured with.
    static func startupFlags(kernel: String) -> [String] {
        [
            "-machine", "accel=kvm", "-nodefaults", "-display", "none", "-serial", "stdio",
            "-device", "isa-debug-exit,iobase=0xf4,iosize=0x4", "-kernel", kernel,
        ]
    }

    struct PathResult: Sendable {
        var path: String
        var vmm: Double?
        var qemu: Double?
        var ratio: Double? {
            guard let vmm, let qemu, qemu > 0 else { return nil }
            return vmm / qemu
        }
    }

    struct Report: Sendable {
        var paths: [PathResult]
        var startupMs: (vmm: Double, qemu: Double?)
        var peakRSSKiB: (vmm: Int, qemu: Int?)
        var tscKHz: Int?
        var rounds: Int
        var qemuNote: String?

        var json: String {
            func num(_ v: Double?) -> String { v.map { fixed($0, 1) } ?? "null" }
            func ratio(_ v: Double?) -> String { v.map { fixed($0, 4) } ?? "null" }
            let paths = self.paths.map {
                "{\"path\":\"\($0.path)\",\"vmm\":\(num($0.vmm)),\"qemu\":\(num($0.qemu)),\"ratio\":\(ratio($0.ratio))}"
            }.joined(separator: ",")
            return "{\"paths\":[\(paths)],\"startupMs\":{\"vmm\":\(num(startupMs.vmm)),\"qemu\":\(num(startupMs.qemu))},"
                + "\"peakRSSKiB\":{\"vmm\":\(peakRSSKiB.vmm),\"qemu\":\(peakRSSKiB.qemu.map(String.init) ?? "null")}}"
        }

        /// Cycles per write on each path, then start-up and peak RSS.
        var chart: BenchChart {
            BenchChart(
                title: "Doorbell cost: vmm vs QEMU (median of \(rounds) runs)",
                groups: paths.map { .init(label: "\($0.path) (cycles)", vmm: $0.vmm, qemu: $0.qemu) } + [
                    .init(label: "start-up to exit (ms)", vmm: startupMs.vmm, qemu: startupMs.qemu),
                    .init(label: "peak RSS (MiB)", vmm: Double(peakRSSKiB.vmm) / 1024,
                          qemu: peakRSSKiB.qemu.map { Double($0) / 1024 }),
                ],
                note: "lower is better; each group on its own scale")
        }

        var table: String {
            var lines: [String] = []
            lines.append("doorbell cost, cycles per write (median of \(rounds) alternating runs each)")
            if let tscKHz { lines.append("TSC frequency: \(tscKHz) kHz") }
            if let qemuNote { lines.append("qemu: \(qemuNote)") }
            lines.append(padded("path", 26) + padded("vmm", 12) + padded("qemu", 12) + "vmm/qemu")
            for p in paths {
                lines.append(padded(p.path, 26) + padded(p.vmm.map { fixed($0, 0) } ?? "-", 12)
                    + padded(p.qemu.map { fixed($0, 0) } ?? "-", 12)
                    + (p.ratio.map { fixed($0, 3) } ?? "-"))
            }
            lines.append("")
            lines.append(padded("", 26) + padded("vmm", 12) + padded("qemu", 12) + "vmm/qemu")
            lines.append(padded("start-up to exit (ms)", 26) + padded(fixed(startupMs.vmm, 1), 12)
                + padded(startupMs.qemu.map { fixed($0, 1) } ?? "-", 12)
                + (startupMs.qemu.map { fixed(startupMs.vmm / $0, 3) } ?? "-"))
            lines.append(padded("peak RSS (MiB)", 26) + padded(fixed(Double(peakRSSKiB.vmm) / 1024, 1), 12)
                + padded(peakRSSKiB.qemu.map { fixed(Double($0) / 1024, 1) } ?? "-", 12)
                + (peakRSSKiB.qemu.map { fixed(Double(peakRSSKiB.vmm) / Double($0), 3) } ?? "-"))
            return lines.joined(separator: "\n")
        }
    }

    /// Parses the bench kernel's output: `path=NAME cycles=C` lines and an optional `tsc_khz=K`.
    static func parse(_ output: String) -> (cycles: [String: Double], order: [String], tscKHz: Int?) {
        var cycles: [String: Double] = [:]
        var order: [String] = []
        var tsc: Int?
        for line in output.split(whereSeparator: \.isNewline) {
            var fields: [String: String] = [:]
            for word in line.split(separator: " ") {
                let kv = word.split(separator: "=", maxSplits: 1)
                if kv.count == 2 { fields[String(kv[0])] = String(kv[1]) }
            }
            if let p = fields["path"], let c = fields["cycles"].flatMap(Double.init) {
                if cycles[p] == nil { order.append(p) }
                cycles[p] = c
            }
            if let t = fields["tsc_khz"].flatMap(Int.init) { tsc = t }
        }
        return (cycles, order, tsc)
    }

    static func median(_ xs: [Double]) -> Double? {
        guard !xs.isEmpty else { return nil }
        let s = xs.sorted()
        return s.count % 2 == 1 ? s[s.count / 2] : (s[s.count / 2 - 1] + s[s.count / 2]) / 2
    }

    /// Runs `rounds` alternating rounds of: vmm bench, qemu bench, vmm start-up, qemu start-up.
    static func run(vmmPath: String, benchKernel: String, startupKernel: String, writes: Int, rounds: Int,
                    log: (String) -> Void) throws -> Report {
        let qemu = ChildProcess.which("qemu-system-x86_64")
        var qemuNote: String? = qemu == nil ? "qemu-system-x86_64 not installed (apt-get install qemu-system-x86)" : nil
        var vmmCycles: [String: [Double]] = [:]
        var qemuCycles: [String: [Double]] = [:]
        var order: [String] = []
        var vmmStart: [Double] = [], qemuStart: [Double] = []
        var vmmRSS = 0, qemuRSS: Int?
        var tsc: Int?
        let benchFlags = commonFlags(kernel: benchKernel, append: "writes=\(writes)")
        let startFlags = startupFlags(kernel: startupKernel)

        func collect(_ run: ChildRun, into table: inout [String: [Double]], who: String) throws {
            let parsed = parse(run.output)
            guard !parsed.cycles.isEmpty else {
                throw BenchError("\(who): bench kernel printed no results (exit \(run.status)): "
                    + run.output.split(whereSeparator: \.isNewline).suffix(3).joined(separator: " | "))
            }
            for p in parsed.order {
                if !order.contains(p) { order.append(p) }
                table[p, default: []].append(parsed.cycles[p]!)
            }
            tsc = tsc ?? parsed.tscKHz
        }

        for round in 1...rounds {
            log("round \(round)/\(rounds)")
            let v = try ChildProcess.run([vmmPath] + benchFlags)
            try collect(v, into: &vmmCycles, who: "vmm")
            vmmRSS = max(vmmRSS, v.peakRSSKiB)
            if let qemu, qemuNote == nil {
                let q = try ChildProcess.run([qemu] + benchFlags)
                do {
                    try collect(q, into: &qemuCycles, who: "qemu")
                    qemuRSS = max(qemuRSS ?? 0, q.peakRSSKiB)
                } catch {
                    qemuNote = "\(error)"
                }
            }
            let vs = try ChildProcess.run([vmmPath] + startFlags)
            vmmStart.append(vs.wallMilliseconds)
            if let qemu, qemuNote == nil {
                let qs = try ChildProcess.run([qemu] + startFlags)
                qemuStart.append(qs.wallMilliseconds)
                qemuRSS = max(qemuRSS ?? 0, qs.peakRSSKiB)
            }
            vmmRSS = max(vmmRSS, vs.peakRSSKiB)
        }
        let paths = order.map {
            PathResult(path: $0, vmm: median(vmmCycles[$0] ?? []), qemu: median(qemuCycles[$0] ?? []))
        }
        return Report(paths: paths, startupMs: (median(vmmStart) ?? 0, median(qemuStart)),
                      peakRSSKiB: (vmmRSS, qemuRSS), tscKHz: tsc, rounds: rounds, qemuNote: qemuNote)
    }
}
