import VMMSys
import ArgumentParser
import ProcessSupport

/// `vmm bench virtio`: one virtio-rng request's round trip — the guest's kick (notify
/// ioeventfd), the I/O thread's work, the MSI-X completion (irqfd) — under vmm and QEMU with
/// the same kernel and flags, alternating.
struct VirtIOBenchCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "virtio", abstract: "Cycles per virtio-rng request (kick → I/O thread → MSI-X): vmm vs QEMU.")

    @Option(name: .customLong("requests"), help: "Requests per run inside the guest.")
    var requests: Int = 1000

    @Option(name: .customLong("rounds"), help: "Alternating rounds (medians are reported).")
    var rounds: Int = 5

    @Option(name: .customLong("kernel"), help: "Kernel (default: built from Guests/tests/virtiorng.c).")
    var kernel: String?

    @Flag(name: .customLong("json"), help: "Print JSON.")
    var json = false

    @Option(name: .customLong("svg"), help: "Also draw the comparison as an SVG chart into this file.")
    var svg: String?

    func validate() throws {
        guard requests > 0, rounds > 0 else { throw ValidationError("--requests and --rounds must be positive") }
    }

    func run() throws {
        let vmmPath = try BundledKernels.vmmExecutable()
        let kernelPath = try kernel ?? (BundledKernels.build() + "/virtiorng.elf")
        let flags = ["-machine", "accel=kvm", "-nodefaults", "-display", "none", "-serial", "stdio",
                     "-device", "isa-debug-exit,iobase=0xf4,iosize=0x4", "-device", "virtio-rng-pci",
                     "-kernel", kernelPath, "-append", "requests=\(requests)"]
        let qemu = ChildProcess.which("qemu-system-x86_64")
        var vmmCycles: [Double] = [], qemuCycles: [Double] = []
        for round in 1...rounds {
            if !json { printError("bench: round \(round)/\(rounds)") }
            vmmCycles.append(try Self.cycles(ChildProcess.run([vmmPath] + flags), who: "vmm"))
            if let qemu { qemuCycles.append(try Self.cycles(ChildProcess.run([qemu] + flags), who: "qemu")) }
        }
        let v = DoorbellComparison.median(vmmCycles) ?? 0
        let q = DoorbellComparison.median(qemuCycles)
        if json {
            let qs = q.map { fixed($0, 0) } ?? "null"
            let ratio = q.map { fixed(v / $0, 4) } ?? "null"
            print("{\"path\":\"virtio-rng-request\",\"vmm\":\(fixed(v, 0)),\"qemu\":\(qs),\"ratio\":\(ratio)}")
        } else {
            print("virtio-rng request round trip, cycles (median of \(rounds) alternating runs, \(requests) requests each)")
            print("vmm   \(fixed(v, 0))")
            print("qemu  " + (q.map { fixed($0, 0) } ?? "- (qemu-system-x86_64 not installed)"))
            if let q { print("vmm/qemu \(fixed(v / q, 3))") }
        }
        if let svg {
            try BenchChart.write(BenchChart(
                title: "virtio-rng request round trip: vmm vs QEMU (median of \(rounds) runs)",
                groups: [.init(label: "cycles per request", vmm: v, qemu: q)],
                note: "kick (ioeventfd) → I/O thread → MSI-X (irqfd); lower is better"), to: svg)
        }
    }

    static func cycles(_ run: ChildRun, who: String) throws -> Double {
        for line in run.output.split(whereSeparator: \.isNewline) where line.hasPrefix("cycles_per_request=") {
            if let c = Double(line.dropFirst("cycles_per_request=".count)) { return c }
        }
        throw BenchError("\(who): the virtio-rng kernel printed no result (exit \(run.status)): "
            + run.output.split(whereSeparator: \.isNewline).suffix(3).joined(separator: " | "))
    }
}
