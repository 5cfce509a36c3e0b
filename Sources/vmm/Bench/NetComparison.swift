import ArgumentParser
import Devices
import Machine
import ProcessSupport
import Synchronization
import VMMSys

/// `vmm bench net`: virtio-net over a tap, the host's own network stack as the peer, under vmm
/// and QEMU (vhost=off: this host has no /dev/vhost-net) with the same kernel and flags,
/// alternating, in a private network namespace created for the run. The virtionet kernel in
/// bench mode measures ping round trips (rdtsc), streams UDP datagrams to the host (counted and
/// timed here) and receives a stream from the host (counted and timed in the guest); around
/// each phase it sends a marker datagram, and the userspace exits in between are counted: vmm's
/// vCPU runner counters (vmm runs in this process), QEMU's `kvm_run_exit` trace events.
struct NetBenchCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "net",
        abstract: "virtio-net over a tap: ping round trip, UDP packets/s and Mbit/s both ways, exits per packet: vmm vs QEMU (vhost=off).")

    @Option(name: .customLong("rounds"), help: "Alternating rounds (medians are reported).")
    var rounds: Int = 3
    @Option(name: .customLong("pings"), help: "Ping round trips per run.")
    var pings: Int = 500
    @Option(name: .customLong("datagrams"), help: "UDP datagrams per stream and direction.")
    var datagrams: Int = 3000
    @Option(name: .customLong("size"), help: "UDP payload bytes (16...1400).")
    var size: Int = 1024
    @Option(name: .customLong("kernel"), help: "Kernel (default: built from Guests/tests/virtionet.c).")
    var kernel: String?
    @Flag(name: .customLong("json"), help: "Print JSON.")
    var json = false

    func validate() throws {
        guard rounds > 0, pings > 0, pings <= 4096, datagrams > 0, (16...1400).contains(size) else {
            throw ValidationError("--rounds and --datagrams must be positive, --pings 1...4096, --size 16...1400")
        }
        guard NetworkNamespace.available else {
            throw ValidationError("needs root, /dev/net/tun and iproute2 (the bench makes a private network namespace with a tap)")
        }
    }

    func run() throws {
        let vmmPath = try BundledKernels.vmmExecutable()
        let kernelPath = try kernel ?? (BundledKernels.build() + "/virtionet.elf")
        let qemu = ChildProcess.which("qemu-system-x86_64")
        var results: [String: [NetRun]] = ["vmm": [], "qemu": []]
        for round in 1...rounds {
            if !json { printError("bench: round \(round)/\(rounds)") }
            results["vmm"]!.append(try NetRun.measure(binary: vmmPath, qemu: false, kernel: kernelPath, pings: pings, datagrams: datagrams, size: size))
            if let qemu {
                results["qemu"]!.append(try NetRun.measure(binary: qemu, qemu: true, kernel: kernelPath, pings: pings, datagrams: datagrams, size: size))
            }
        }
        let report = NetReport(vmm: results["vmm"]!, qemu: results["qemu"]!, rounds: rounds, pings: pings, datagrams: datagrams, size: size)
        print(json ? report.json : report.table)
    }
}

/// One VMM's run of the bench kernel.
struct NetRun {
    var rttMedianNs = 0.0, rttP99Ns = 0.0
    var txPPS = 0.0, txMbits = 0.0, rxPPS = 0.0, rxMbits = 0.0
    /// Userspace exits (KVM_EXIT_IO and KVM_EXIT_MMIO returns to the VMM) over all packets of
    /// the three phases.
    var exitsPerPacket: Double?

    static let markers: Set<String> = ["rtt-start", "rtt-end", "tx-start", "tx-end", "rx-start", "rx-end"]

    /// vmm runs in this process (its vCPU runner counts the exits); QEMU as a child with its
    /// `kvm_run_exit` trace event written to a file (one line per return from KVM_RUN, with the
    /// exit reason), the count read at each marker.
    static func measure(binary: String, qemu: Bool, kernel: String, pings: Int, datagrams: Int, size: Int) throws -> NetRun {
        try NetworkNamespace.run { () throws -> NetRun in
            try NetworkNamespace.addTap("tap0", address: "10.0.2.2/24")
            let exitCount = Mutex<(@Sendable () -> UInt64?)?>(nil)
            let exits = Mutex<[String: UInt64]>([:])
            let txCounts = Mutex<(Int, Int, UInt64)>((0, 0, 0))
            let server = Mutex<UDPEchoServer?>(nil)
            let echo = try UDPEchoServer(host: "10.0.2.2", port: 7777, markers: markers, onMarker: { marker, _ in
                if let e = exitCount.withLock({ $0 })?() { exits.withLock { $0[marker] = e } }
                if marker == "tx-start" { server.withLock { $0?.resetCounts() } }
                if marker == "tx-end", let c = server.withLock({ $0?.counts }) { txCounts.withLock { $0 = c } }
            }, afterMarker: { marker, peer in
                guard marker == "rx-start", let s = server.withLock({ $0 }) else { return }
                let payload = [UInt8](repeating: 0x5a, count: size)
                for _ in 0..<datagrams { s.socket.send(payload[...], to: peer) }
            })
            server.withLock { $0 = echo }
            defer { echo.stop() }
            let netdev = "tap,id=n0,ifname=tap0,script=no,downscript=no" + (qemu ? ",vhost=off" : "")
            let flags = ["-machine", "accel=kvm", "-nodefaults", "-display", "none", "-serial", "stdio",
                         "-device", "isa-debug-exit,iobase=0xf4,iosize=0x4", "-netdev", netdev,
                         "-device", "virtio-net-pci,netdev=n0", "-kernel", kernel,
                         "-append", "bench=1 rtt=\(pings) stream=\(datagrams) size=\(size)"]
            let status: Int32, output: String
            if qemu {
                let trace = (HostEnvironment.value("TMPDIR") ?? "/tmp") + "/vmm-bench-qemu-trace-\(HostEnvironment.processID)"
                defer { HostEnvironment.removeFile(trace) }
                let vm = try BackgroundProcess([binary] + flags + ["-trace", "kvm_run_exit", "-D", trace])
                exitCount.withLock { $0 = { QEMUTrace.userspaceExits(trace) } }
                status = vm.wait(timeoutSeconds: 600)
                output = vm.output
            } else {
                let parsed = try QEMUCommandLine.parse(flags)
                let config = try MachineConfiguration(qemu: parsed.arguments)
                let serial = CapturingSerialBackend()
                let machine = try PCMachine(config, serial: serial)
                exitCount.withLock { $0 = { machine.runners.reduce(0) { $0 + $1.counters.portIO + $1.counters.mmio } } }
                status = machine.run()
                exitCount.withLock { $0 = nil }
                output = serial.text
            }
            exitCount.withLock { $0 = nil }
            guard status == 1, output.contains("PASS virtionet") else {
                throw BenchError("\(qemu ? "qemu" : "vmm"): the bench kernel failed (status \(status)): "
                    + output.split(separator: "\n").suffix(3).joined(separator: " | "))
            }
            var run = NetRun()
            var fields: [String: Double] = [:]
            for line in output.split(whereSeparator: \.isNewline) {
                for word in line.split(separator: " ") {
                    let kv = word.split(separator: "=", maxSplits: 1)
                    if kv.count == 2, let v = Double(kv[1]) { fields[String(kv[0])] = v }
                }
            }
            run.rttMedianNs = fields["rtt_median_ns"] ?? 0
            run.rttP99Ns = fields["rtt_p99_ns"] ?? 0
            let (n, bytes, ns) = txCounts.withLock { $0 }
            if ns > 0, n > 1 {
                run.txPPS = Double(n - 1) / (Double(ns) / 1e9)
                run.txMbits = Double(bytes) * 8 / Double(ns) * 1e3 * Double(n - 1) / Double(n)
            }
            if let received = fields["rx_datagrams"], let rxNs = fields["rx_ns"], rxNs > 0, received > 1 {
                run.rxPPS = (received - 1) / (rxNs / 1e9)
                run.rxMbits = run.rxPPS * Double(size) * 8 / 1e6
            }
            let e = exits.withLock { $0 }
            if let a = e["rtt-start"], let b = e["rtt-end"], let c = e["tx-start"], let d = e["tx-end"], let f = e["rx-start"], let g = e["rx-end"] {
                let packets = Double(2 * pings + n) + (fields["rx_datagrams"] ?? 0)
                run.exitsPerPacket = Double((b &- a) &+ (d &- c) &+ (g &- f)) / max(packets, 1)
            }
            return run
        }
    }
}

/// QEMU's `kvm_run_exit` trace: one line per return from KVM_RUN ("kvm_run_exit cpu_index 0,
/// reason 2"); reasons 2 (KVM_EXIT_IO) and 6 (KVM_EXIT_MMIO) are the exits to userspace device
/// I/O causes. KVM's own statistics (debugfs, query-stats) do not count them on this host.
enum QEMUTrace {
    static func userspaceExits(_ path: String) -> UInt64? {
        guard let bytes = try? readWholeFile(path, maximumBytes: 1 << 30) else { return nil }
        var count: UInt64 = 0
        for line in bytes.split(separator: UInt8(ascii: "\n")) where line.starts(with: Array("kvm_run_exit".utf8)) {
            if line.count >= 2, line.last == UInt8(ascii: "2") || line.last == UInt8(ascii: "6"),
               line[line.index(before: line.endIndex) - 1] == UInt8(ascii: " ") { count += 1 }
        }
        return count
    }
}

struct NetReport {
    var vmm: [NetRun], qemu: [NetRun]
    var rounds: Int, pings: Int, datagrams: Int, size: Int

    static func median(_ xs: [Double]) -> Double? { DoorbellComparison.median(xs) }

    var rows: [(String, Double?, Double?, Int)] {
        func m(_ runs: [NetRun], _ f: (NetRun) -> Double?) -> Double? { Self.median(runs.compactMap(f)) }
        return [
            ("ping rtt median (us)", m(vmm) { $0.rttMedianNs / 1e3 }, m(qemu) { $0.rttMedianNs / 1e3 }, 1),
            ("ping rtt p99 (us)", m(vmm) { $0.rttP99Ns / 1e3 }, m(qemu) { $0.rttP99Ns / 1e3 }, 1),
            ("udp guest->host (packets/s)", m(vmm) { $0.txPPS }, m(qemu) { $0.txPPS }, 0),
            ("udp guest->host (Mbit/s)", m(vmm) { $0.txMbits }, m(qemu) { $0.txMbits }, 2),
            ("udp host->guest (packets/s)", m(vmm) { $0.rxPPS }, m(qemu) { $0.rxPPS }, 0),
            ("udp host->guest (Mbit/s)", m(vmm) { $0.rxMbits }, m(qemu) { $0.rxMbits }, 2),
            ("userspace exits per packet", m(vmm) { $0.exitsPerPacket }, m(qemu) { $0.exitsPerPacket }, 3),
        ]
    }

    var table: String {
        var lines = ["virtio-net over a tap, median of \(rounds) alternating runs (QEMU: vhost=off, no /dev/vhost-net here)",
                     "\(pings) pings, \(datagrams) UDP datagrams of \(size) bytes each way",
                     padded("", 28) + padded("vmm", 12) + padded("qemu", 12) + "vmm/qemu"]
        for (name, v, q, digits) in rows {
            let vs = v.map { fixed($0, digits) } ?? "n/a", qs = q.map { fixed($0, digits) } ?? (qemu.isEmpty ? "-" : "n/a")
            let ratio = (v != nil && q != nil && q! != 0) ? fixed(v! / q!, 3) : ""
            lines.append(padded(name, 28) + padded(vs, 12) + padded(qs, 12) + ratio)
        }
        return lines.joined(separator: "\n")
    }

    var json: String {
        let items = rows.map { name, v, q, _ in
            "{\"metric\":\"\(name)\",\"vmm\":\(v.map { fixed($0, 3) } ?? "null"),\"qemu\":\(q.map { fixed($0, 3) } ?? "null")}"
        }
        return "{\"rounds\":\(rounds),\"pings\":\(pings),\"datagrams\":\(datagrams),\"size\":\(size),\"results\":[\(items.joined(separator: ","))]}"
    }
}
