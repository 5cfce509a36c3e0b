import ArgumentParser
import ProcessSupport
import VMMSys

/// `vmm bench startup`: what it costs to start a machine, vmm vs QEMU in one run. Three
/// measurements, alternating between the two VMMs each round: `-version` (the bare executable),
/// a 64-bit kernel that exits at once (the whole machine: exec to exit, wall time and peak RSS),
/// and, for vmm, the same run traced (`VMM_STARTUP_TRACE`) to show where the time goes from exec
/// to the first KVM_RUN and on to the guest's exit.
///
/// Peak RSS: vmm's is its own VmHWM, which it reports when traced; QEMU's is wait4's
/// `ru_maxrss`, which also counts what the child shared with this process before exec, so it
/// can't read below this process's own RSS (a few MiB; QEMU's figures are far above that).
struct StartupBenchCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "startup",
        abstract: "Exec-to-exit time and peak RSS of -version and of a kernel that exits at once: vmm vs QEMU, with vmm's phases.")

    @Option(name: .customLong("rounds"), help: "Alternating rounds (medians are reported).")
    var rounds: Int = 21

    @Option(name: .customLong("kernel"), help: "Kernel that exits at once (default: built from Guests/tests/startup64.c).")
    var kernel: String?

    @Flag(name: .customLong("json"), help: "Print JSON.")
    var json = false

    @Option(name: .customLong("svg"), help: "Also draw the comparison as an SVG chart into this file.")
    var svg: String?

    func validate() throws {
        guard rounds > 0 else { throw ValidationError("--rounds must be positive") }
    }

    func run() throws {
        let vmmPath = try BundledKernels.vmmExecutable()
        let kernel = try self.kernel ?? (BundledKernels.build() + "/startup64.elf")
        let report = try StartupComparison.run(vmmPath: vmmPath, kernel: kernel, rounds: rounds,
                                               log: { if !json { printError("bench: \($0)") } })
        print(json ? report.json : report.table)
        if let svg { try BenchChart.write(report.chart, to: svg) }
    }
}

/// The start-up comparison: runs, medians and the report.
struct StartupComparison {
    /// One measured program: median wall time and the largest peak RSS over the rounds.
    struct Cost: Sendable {
        var milliseconds: Double
        var peakRSSKiB: Int
    }

    struct Report: Sendable {
        var rounds: Int
        var vmmVersion: Cost
        var vmmKernel: Cost
        var qemuVersion: Cost?
        var qemuKernel: Cost?
        /// vmm's phases: name and median milliseconds since exec (spawn), in order.
        var phases: [(name: String, milliseconds: Double)]
        var qemuNote: String?

        var json: String {
            func cost(_ c: Cost?) -> String {
                c.map { "{\"ms\":\(fixed($0.milliseconds, 2)),\"peakRSSKiB\":\($0.peakRSSKiB)}" } ?? "null"
            }
            let phases = self.phases.map { "{\"phase\":\"\($0.name)\",\"ms\":\(fixed($0.milliseconds, 2))}" }
                .joined(separator: ",")
            return "{\"rounds\":\(rounds),\"version\":{\"vmm\":\(cost(vmmVersion)),\"qemu\":\(cost(qemuVersion))},"
                + "\"kernel\":{\"vmm\":\(cost(vmmKernel)),\"qemu\":\(cost(qemuKernel))},\"vmmPhases\":[\(phases)]}"
        }

        var table: String {
            var lines = ["start-up, exec to exit (median of \(rounds) alternating runs each; peak RSS is the largest seen)"]
            if let qemuNote { lines.append("qemu: \(qemuNote)") }
            lines.append(padded("", 34) + padded("vmm", 12) + padded("qemu", 12) + "vmm/qemu")
            func row(_ name: String, _ v: Double, _ q: Double?, _ places: Int) {
                lines.append(padded(name, 34) + padded(fixed(v, places), 12) + padded(q.map { fixed($0, places) } ?? "-", 12)
                    + (q.map { $0 > 0 ? fixed(v / $0, 3) : "-" } ?? "-"))
            }
            row("-version (ms)", vmmVersion.milliseconds, qemuVersion?.milliseconds, 2)
            row("-version peak RSS (MiB)", Double(vmmVersion.peakRSSKiB) / 1024, qemuVersion.map { Double($0.peakRSSKiB) / 1024 }, 1)
            row("kernel exits at once (ms)", vmmKernel.milliseconds, qemuKernel?.milliseconds, 2)
            row("kernel exits at once, RSS (MiB)", Double(vmmKernel.peakRSSKiB) / 1024, qemuKernel.map { Double($0.peakRSSKiB) / 1024 }, 1)
            lines.append("")
            lines.append("vmm's phases (VMM_STARTUP_TRACE=1; median ms since exec, and the step from the previous)")
            var previous = 0.0
            for p in phases {
                lines.append(padded("  " + p.name, 34) + padded(fixed(p.milliseconds, 2), 12) + "+" + fixed(p.milliseconds - previous, 2))
                previous = p.milliseconds
            }
            return lines.joined(separator: "\n")
        }

        /// The chart: wall time and peak RSS side by side.
        var chart: BenchChart {
            BenchChart(
                title: "Start-up: vmm vs QEMU (median of \(rounds) runs)",
                groups: [
                    .init(label: "-version (ms)", vmm: vmmVersion.milliseconds, qemu: qemuVersion?.milliseconds),
                    .init(label: "kernel exits at once (ms)", vmm: vmmKernel.milliseconds, qemu: qemuKernel?.milliseconds),
                    .init(label: "-version peak RSS (MiB)", vmm: Double(vmmVersion.peakRSSKiB) / 1024,
                          qemu: qemuVersion.map { Double($0.peakRSSKiB) / 1024 }),
                    .init(label: "kernel run peak RSS (MiB)", vmm: Double(vmmKernel.peakRSSKiB) / 1024,
                          qemu: qemuKernel.map { Double($0.peakRSSKiB) / 1024 }),
                ],
                note: "lower is better; each group on its own scale")
        }
    }

    static func run(vmmPath: String, kernel: String, rounds: Int, log: (String) -> Void) throws -> Report {
        let qemu = ChildProcess.which("qemu-system-x86_64")
        var qemuNote: String? = qemu == nil ? "qemu-system-x86_64 not installed (apt-get install qemu-system-x86)" : nil
        let flags = DoorbellComparison.startupFlags(kernel: kernel)
        var vmmVersion: [ChildRun] = [], vmmKernel: [ChildRun] = [], qemuVersion: [ChildRun] = [], qemuKernel: [ChildRun] = []
        var phaseSamples: [String: [Double]] = [:]
        var phaseOrder: [String] = []

        func expectExit(_ run: ChildRun, _ who: String) throws {
            // The kernel writes 0 to isa-debug-exit: status 1 under both VMMs.
            guard run.status == 1 else {
                throw BenchError("\(who): the start-up kernel ended with status \(run.status), not 1: "
                    + run.output.split(whereSeparator: \.isNewline).suffix(3).joined(separator: " | "))
            }
        }

        for round in 1...rounds {
            if round == 1 || round % 10 == 0 { log("round \(round)/\(rounds)") }
            var version = try ChildProcess.run([vmmPath, "-version"], environment: ["VMM_STARTUP_TRACE=1"])
            version.peakRSSKiB = StartupTrace.peakRSS(in: version.output) ?? version.peakRSSKiB
            vmmVersion.append(version)
            let v = try ChildProcess.run([vmmPath] + flags)
            try expectExit(v, "vmm")
            vmmKernel.append(v)
            let traced = try ChildProcess.run([vmmPath] + flags, environment: ["VMM_STARTUP_TRACE=1"])
            try expectExit(traced, "vmm (traced)")
            if let kib = StartupTrace.peakRSS(in: traced.output) { vmmKernel[vmmKernel.count - 1].peakRSSKiB = kib }
            for mark in StartupTrace.marks(in: traced.output) {
                if phaseSamples[mark.phase] == nil { phaseOrder.append(mark.phase) }
                phaseSamples[mark.phase, default: []].append(Double(mark.nanoseconds &- traced.spawnedAtNanoseconds) / 1e6)
            }
            phaseSamples["process exit", default: []].append(traced.wallMilliseconds)
            if let qemu, qemuNote == nil {
                qemuVersion.append(try ChildProcess.run([qemu, "-version"]))
                let q = try ChildProcess.run([qemu] + flags)
                do {
                    try expectExit(q, "qemu")
                    qemuKernel.append(q)
                } catch {
                    qemuNote = "\(error)"
                }
            }
        }
        phaseOrder.append("process exit")

        func cost(_ runs: [ChildRun]) -> Cost? {
            guard let ms = DoorbellComparison.median(runs.map(\.wallMilliseconds)) else { return nil }
            return Cost(milliseconds: ms, peakRSSKiB: runs.map(\.peakRSSKiB).max() ?? 0)
        }
        let phases = phaseOrder.compactMap { name in
            DoorbellComparison.median(phaseSamples[name] ?? []).map { (name: name, milliseconds: $0) }
        }
        return Report(rounds: rounds, vmmVersion: cost(vmmVersion)!, vmmKernel: cost(vmmKernel)!,
                      qemuVersion: cost(qemuVersion), qemuKernel: qemuNote == nil ? cost(qemuKernel) : nil,
                      phases: phases, qemuNote: qemuNote)
    }
}
