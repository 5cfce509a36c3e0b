import VMMSys
import ArgumentParser
#if canImport(Glibc)
import Glibc
#endif
import ProcessSupport

/// `vmm bench …`: measurements side by side with QEMU.
struct BenchCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bench", abstract: "Benchmarks, each run side by side with qemu-system-x86_64 when installed.",
        subcommands: [DoorbellBenchCommand.self, VirtIOBenchCommand.self, MemoryBenchCommand.self, StartupBenchCommand.self, NetBenchCommand.self,
                      FirmwareBenchCommand.self])
}

/// `vmm bench doorbell`: the bench kernel's cycles per pci-testdev doorbell write, start-up
/// time and peak memory, under vmm and QEMU with the same flags, alternating.
struct DoorbellBenchCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "doorbell",
        abstract: "Cycles per doorbell write on each pci-testdev path, start-up time and peak RSS: vmm vs QEMU.")

    @Option(name: [.customShort("n"), .customLong("writes")], help: "Writes per path inside the guest.")
    var writes: Int = 100_000

    @Option(name: .customLong("rounds"), help: "Alternating rounds (medians are reported).")
    var rounds: Int = 5

    @Option(name: .customLong("kernel"), help: "Bench kernel (default: built from Guests/tests/bench.c).")
    var kernel: String?

    @Option(name: .customLong("startup-kernel"), help: "Start-up kernel (default: built from Guests/tests/startup64.c).")
    var startupKernel: String?

    @Flag(name: .customLong("json"), help: "Print JSON.")
    var json = false

    @Option(name: .customLong("svg"), help: "Also draw the comparison as an SVG chart into this file.")
    var svg: String?

    func validate() throws {
        guard writes > 0 else { throw ValidationError("--writes must be positive") }
        guard rounds > 0 else { throw ValidationError("--rounds must be positive") }
    }

    func run() throws {
        let vmmPath = try BundledKernels.vmmExecutable()
        var bench = kernel, startup = startupKernel
        if bench == nil || startup == nil {
            let dir = try BundledKernels.build()
            bench = bench ?? dir + "/bench.elf"
            startup = startup ?? dir + "/startup64.elf"
        }
        let report = try DoorbellComparison.run(
            vmmPath: vmmPath, benchKernel: bench!, startupKernel: startup!, writes: writes, rounds: rounds,
            log: { if !json { printError("bench: \($0)") } })
        print(json ? report.json : report.table)
        if let svg { try BenchChart.write(report.chart, to: svg) }
    }
}

/// The test kernels kept as source in the repository, built with the system's gcc/as/ld.
enum BundledKernels {
    /// The Guests/ directory of the checkout this executable was built from.
    static var guestsDirectory: String {
        // #filePath is <checkout>/Sources/vmm/Bench/BenchCommand.swift.
        String(#filePath).split(separator: "/", omittingEmptySubsequences: false).dropLast(4).joined(separator: "/") + "/Guests"
    }

    /// This executable's path (the benchmarks run it as a child, side by side with QEMU).
    static func vmmExecutable() throws -> String {
        try currentExecutablePath()
    }

    /// Builds every kernel into a fresh temporary directory and returns it.
    static func build() throws -> String {
        let script = guestsDirectory + "/build.sh"
        guard HostEnvironment.fileExists(script) else {
            throw BenchError("the bench kernel's source is not at \(guestsDirectory); pass --kernel and --startup-kernel")
        }
        for tool in ["gcc", "as", "ld"] where ChildProcess.which(tool) == nil {
            throw BenchError("building the bench kernel needs \(tool) (apt-get install gcc binutils), or pass --kernel")
        }
        let out = (HostEnvironment.value("TMPDIR") ?? "/tmp") + "/vmm-bench-\(HostEnvironment.processID)"
        let run = try ChildProcess.run(["/bin/sh", script, out], timeoutSeconds: 300)
        guard run.status == 0 else { throw BenchError("Guests/build.sh failed: \(run.output.suffix(400))") }
        return out
    }
}
