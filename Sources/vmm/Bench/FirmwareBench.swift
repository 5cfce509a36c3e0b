import ArgumentParser
import ProcessSupport
import VMMSys

/// `vmm bench firmware`: how long SeaBIOS takes to bring the machine to the boot sector, vmm vs
/// QEMU in the same run, alternating. Three runs each round, with the command line
/// (`-nodefaults`, COM1 on stdio, isa-debug-exit, one virtio-blk disk): a boot sector that exits
/// at once (start to the boot sector), the bootdisk guest to its PASS (INT 13h reads through
/// SeaBIOS's virtio-blk driver), and `-bios bios-256k.bin -kernel` with a kernel that exits at
/// once (firmware plus QEMU's multiboot_dma.bin). vmm's runs are traced (`VMM_STARTUP_TRACE`,
/// a handful of writes) to split its start from the guest's time.
struct FirmwareBenchCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "firmware",
        abstract: "Start to the boot sector through SeaBIOS (and to a boot disk's end, and -bios -kernel): vmm vs QEMU.")

    @Option(name: .customLong("rounds"), help: "Alternating rounds (medians are reported).")
    var rounds: Int = 5

    @Option(name: .customLong("bios"), help: "The firmware both VMMs run.")
    var bios: String = "bios-256k.bin"

    @Flag(name: .customLong("json"), help: "Print JSON.")
    var json = false

    @Option(name: .customLong("svg"), help: "Also draw the comparison as an SVG chart into this file.")
    var svg: String?

    func validate() throws {
        guard rounds > 0 else { throw ValidationError("--rounds must be positive") }
    }

    func run() throws {
        let report = try FirmwareComparison.run(vmmPath: try BundledKernels.vmmExecutable(), guests: try BundledKernels.build(),
                                                bios: bios, rounds: rounds, log: { if !json { printError("bench: \($0)") } })
        print(json ? report.json : report.table)
        if let svg { try BenchChart.write(report.chart, to: svg) }
    }
}

/// The firmware comparison: the three workloads, medians and the report.
struct FirmwareComparison {
    struct Workload: Sendable {
        var key: String
        var label: String
        var flags: [String]
    }

    struct Result: Sendable {
        var workload: Workload
        var vmm: StartupComparison.Cost
        var qemu: StartupComparison.Cost?
    }

    struct Report: Sendable {
        var rounds: Int
        var results: [Result]
        /// vmm's phases in the boot-sector run (median ms since exec).
        var phases: [(name: String, milliseconds: Double)]
        var qemuNote: String?

        var json: String {
            func cost(_ c: StartupComparison.Cost?) -> String {
                c.map { "{\"ms\":\(fixed($0.milliseconds, 2)),\"peakRSSKiB\":\($0.peakRSSKiB)}" } ?? "null"
            }
            let runs = results.map { "\"\($0.workload.key)\":{\"vmm\":\(cost($0.vmm)),\"qemu\":\(cost($0.qemu))}" }.joined(separator: ",")
            let phases = self.phases.map { "{\"phase\":\"\($0.name)\",\"ms\":\(fixed($0.milliseconds, 2))}" }.joined(separator: ",")
            return "{\"rounds\":\(rounds),\(runs),\"vmmPhases\":[\(phases)]}"
        }

        var table: String {
            var lines = ["firmware (SeaBIOS), start to exit (median of \(rounds) alternating runs each; peak RSS is the largest seen)"]
            if let qemuNote { lines.append("qemu: \(qemuNote)") }
            lines.append(padded("", 44) + padded("vmm", 12) + padded("qemu", 12) + "vmm/qemu")
            func row(_ name: String, _ v: Double, _ q: Double?, _ places: Int) {
                lines.append(padded(name, 44) + padded(fixed(v, places), 12) + padded(q.map { fixed($0, places) } ?? "-", 12)
                    + (q.map { $0 > 0 ? fixed(v / $0, 3) : "-" } ?? "-"))
            }
            for r in results { row(r.workload.label + " (ms)", r.vmm.milliseconds, r.qemu?.milliseconds, 1) }
            if let first = results.first {
                row(first.workload.label + ", RSS (MiB)", Double(first.vmm.peakRSSKiB) / 1024,
                    first.qemu.map { Double($0.peakRSSKiB) / 1024 }, 1)
            }
            lines.append("")
            lines.append("vmm's phases to the boot sector (median ms since exec, and the step from the previous)")
            var previous = 0.0
            for p in phases {
                lines.append(padded("  " + p.name, 44) + padded(fixed(p.milliseconds, 1), 12) + "+" + fixed(p.milliseconds - previous, 1))
                previous = p.milliseconds
            }
            return lines.joined(separator: "\n")
        }

        var chart: BenchChart {
            BenchChart(title: "Firmware boot: vmm vs QEMU (median of \(rounds) runs)",
                       groups: results.map { .init(label: $0.workload.label + " (ms)", vmm: $0.vmm.milliseconds, qemu: $0.qemu?.milliseconds) },
                       note: "SeaBIOS on both; lower is better; each group on its own scale")
        }
    }

    /// The command line with `disk` on virtio-blk (read-only: nothing is written).
    static func diskFlags(_ disk: String, bios: String) -> [String] {
        ["-machine", "accel=kvm", "-nodefaults", "-display", "none", "-serial", "stdio", "-bios", bios,
         "-device", "isa-debug-exit,iobase=0xf4,iosize=0x4", "-drive", "file=\(disk),if=virtio,format=raw,readonly=on"]
    }

    static func workloads(guests: String, bios: String) -> [Workload] {
        [
            Workload(key: "bootSector", label: "start to the boot sector", flags: diskFlags(guests + "/exitsector.img", bios: bios)),
            Workload(key: "bootDisk", label: "bootdisk guest to PASS", flags: diskFlags(guests + "/bootdisk-a.img", bios: bios)),
            Workload(key: "biosKernel", label: "-bios -kernel, kernel exits at once",
                     flags: ["-bios", bios] + DoorbellComparison.startupFlags(kernel: guests + "/startup64.elf")),
        ]
    }

    static func run(vmmPath: String, guests: String, bios: String, rounds: Int, log: (String) -> Void) throws -> Report {
        let qemu = ChildProcess.which("qemu-system-x86_64")
        var qemuNote: String? = qemu == nil ? "qemu-system-x86_64 not installed (apt-get install qemu-system-x86)" : nil
        let work = workloads(guests: guests, bios: bios)
        var vmmRuns = [[ChildRun]](repeating: [], count: work.count), qemuRuns = [[ChildRun]](repeating: [], count: work.count)
        var phaseSamples: [String: [Double]] = [:]
        var phaseOrder: [String] = []

        func expectExit(_ run: ChildRun, _ who: String, _ w: Workload) throws {
            // Each guest writes 0 to isa-debug-exit: status 1 under both VMMs.
            guard run.status == 1 else {
                throw BenchError("\(who), \(w.label): status \(run.status), not 1: "
                    + run.output.split(whereSeparator: \.isNewline).suffix(3).joined(separator: " | "))
            }
        }

        for round in 1...rounds {
            log("round \(round)/\(rounds)")
            for (i, w) in work.enumerated() {
                var v = try ChildProcess.run([vmmPath] + w.flags, timeoutSeconds: 300, environment: ["VMM_STARTUP_TRACE=1"])
                try expectExit(v, "vmm", w)
                v.peakRSSKiB = StartupTrace.peakRSS(in: v.output) ?? v.peakRSSKiB
                vmmRuns[i].append(v)
                if i == 0 {
                    for mark in StartupTrace.marks(in: v.output) {
                        if phaseSamples[mark.phase] == nil { phaseOrder.append(mark.phase) }
                        phaseSamples[mark.phase, default: []].append(Double(mark.nanoseconds &- v.spawnedAtNanoseconds) / 1e6)
                    }
                    phaseSamples["process exit", default: []].append(v.wallMilliseconds)
                }
                if let qemu, qemuNote == nil {
                    let q = try ChildProcess.run([qemu] + w.flags, timeoutSeconds: 300)
                    do {
                        try expectExit(q, "qemu", w)
                        qemuRuns[i].append(q)
                    } catch {
                        qemuNote = "\(error)"
                    }
                }
            }
        }
        phaseOrder.append("process exit")

        func cost(_ runs: [ChildRun]) -> StartupComparison.Cost? {
            guard let ms = DoorbellComparison.median(runs.map(\.wallMilliseconds)) else { return nil }
            return StartupComparison.Cost(milliseconds: ms, peakRSSKiB: runs.map(\.peakRSSKiB).max() ?? 0)
        }
        let results = work.indices.compactMap { i in
            cost(vmmRuns[i]).map { Result(workload: work[i], vmm: $0, qemu: qemuNote == nil ? cost(qemuRuns[i]) : nil) }
        }
        let phases = phaseOrder.compactMap { name in
            DoorbellComparison.median(phaseSamples[name] ?? []).map { (name: name, milliseconds: $0) }
        }
        return Report(rounds: rounds, results: results, phases: phases, qemuNote: qemuNote)
    }
}
