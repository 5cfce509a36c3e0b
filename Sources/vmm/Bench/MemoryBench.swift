import ArgumentParser
import Memory
import VMMSys

/// `vmm bench memory`: the memory API at scale — n I/O regions in one address space, each
/// with one datamatch ioeventfd, one eventfd listener — timing the build (one transaction),
/// moving one region and adding one ioeventfd, and counting the eventfd listener calls of the
/// last two. No guest and no QEMU: this measures the VMM's own topology machinery.
struct MemoryBenchCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "memory",
        abstract: "Memory API cost at 1 000, 10 000 and 100 000 regions: build, move one region, add one ioeventfd.")

    @Option(name: .customLong("regions"), parsing: .upToNextOption,
            help: "Region counts to measure (default: 1000 10000 100000).")
    var regions: [Int] = MemoryBenchmark.defaultSizes

    @Option(name: .customLong("repetitions"), help: "Moves and adds per size, the sizes taking turns (medians are reported).")
    var repetitions: Int = 15

    @Flag(name: .customLong("json"), help: "Print JSON.")
    var json = false

    @Option(name: .customLong("svg"), help: "Also draw the figures as an SVG chart into this file.")
    var svg: String?

    func validate() throws {
        guard !regions.isEmpty else { throw ValidationError("--regions needs at least one count") }
        for n in regions where n < 1 || n > MemoryBenchmark.maximumRegions {
            throw ValidationError("--regions \(n): each count must be between 1 and \(MemoryBenchmark.maximumRegions)")
        }
        guard repetitions >= 1, repetitions <= 1000 else { throw ValidationError("--repetitions must be between 1 and 1000") }
    }

    func run() throws {
        if !json { printError("bench: building \(regions.map(String.init).joined(separator: ", ")) regions, then \(repetitions) rounds") }
        let cases = try MemoryBenchmark.run(sizes: regions, repetitions: repetitions)
        print(json ? Self.json(cases) : Self.table(cases))
        if let svg { try BenchChart.write(Self.chart(cases), to: svg) }
    }

    /// Move-one and add-one per size. QEMU's memory API has no outside view that could time
    /// it, so its bars read "not measured"; README compares with its algorithm instead.
    static func chart(_ cases: [MemoryBenchmark.Case]) -> BenchChart {
        BenchChart(
            title: "Memory API at scale (ms, medians)",
            groups: cases.flatMap { c in [
                BenchChart.Group(label: "move one of \(c.regions)", vmm: c.moveOneMs, qemu: nil),
                BenchChart.Group(label: "add one ioeventfd, \(c.regions)", vmm: c.addOneMs, qemu: nil),
            ] },
            note: "render + region diff + ioeventfd diff, one transaction each; lower is better")
    }

    /// `{"cases":[{"regions":N,"buildMs":x,"moveOneMs":y,"addOneMs":z,"moveCalls":a,"addOneCalls":b}]}`.
    static func json(_ cases: [MemoryBenchmark.Case]) -> String {
        let items = cases.map { c in
            "{\"regions\":\(c.regions),\"buildMs\":\(ms(c.buildMs)),\"moveOneMs\":\(ms(c.moveOneMs)),"
                + "\"addOneMs\":\(ms(c.addOneMs)),\"moveCalls\":\(c.moveCalls),\"addOneCalls\":\(c.addOneCalls)}"
        }
        return "{\"cases\":[" + items.joined(separator: ",") + "]}"
    }

    static func table(_ cases: [MemoryBenchmark.Case]) -> String {
        func col(_ s: String, _ w: Int) -> String { s + String(repeating: " ", count: max(1, w - s.count)) }
        var out = "memory API: n I/O regions, one datamatch ioeventfd each, one eventfd listener (ms; move and add: medians)\n"
        out += col("regions", 10) + col("build", 12) + col("move-one", 12) + col("add-one", 12)
            + col("move calls", 12) + "add-one calls\n"
        for c in cases {
            out += col("\(c.regions)", 10) + col(ms(c.buildMs), 12) + col(ms(c.moveOneMs), 12) + col(ms(c.addOneMs), 12)
                + col("\(c.moveCalls)", 12) + "\(c.addOneCalls)\n"
        }
        return String(out.dropLast())
    }

    private static func ms(_ v: Double) -> String { fixed(v, 3) }
}
