import Foundation
#if canImport(FoundationXML)
import FoundationXML
#endif
import ProcessSupport
import TestSupport
import Testing

/// The `vmm bench` subcommands run end to end (one short round each) and report what README
/// says they report. Figures are never asserted: only that they were measured, are in the
/// documented shape, and are consistent with each other.
@Suite(.enabled(if: TestHost.kvmAvailable, "requires read/write access to /dev/kvm"),
       .enabled(if: TestHost.toolchainAvailable, "building the guest kernels needs gcc, as and ld"))
struct BenchCommandTests {
    /// `vmm bench startup --json --svg`: both VMMs measured, vmm's phases in start-up order and
    /// increasing, the chart a well-formed SVG with a bar per measured value.
    @Test func startupReportsPhasesInOrderAndDrawsAChart() throws {
        let svg = NSTemporaryDirectory() + "vmm-startup-\(getpid()).svg"
        defer { try? FileManager.default.removeItem(atPath: svg) }
        let kernel = try GuestKernels.path("startup64")
        let run = try Harness.vmm(["bench", "startup", "--rounds", "1", "--json", "--kernel", kernel, "--svg", svg],
                                  timeoutSeconds: 120)
        #expect(run.status == 0, "\(run.output)")
        let json = try #require(run.output.split(separator: "\n").last { $0.hasPrefix("{") })
        let report = try #require(try JSONSerialization.jsonObject(with: Data(json.utf8)) as? [String: Any])
        let kernelCosts = try #require(report["kernel"] as? [String: Any])
        let vmm = try #require(kernelCosts["vmm"] as? [String: Any])
        #expect((vmm["ms"] as? Double ?? 0) > 0 && (vmm["peakRSSKiB"] as? Int ?? 0) > 0)
        if Harness.qemuPath != nil {
            let qemu = try #require(kernelCosts["qemu"] as? [String: Any], "QEMU is installed, so it is measured")
            #expect((qemu["ms"] as? Double ?? 0) > 0)
        }
        let phases = try #require(report["vmmPhases"] as? [[String: Any]])
        let names = phases.compactMap { $0["phase"] as? String }
        #expect(names == ["main", "configured", "vm-created", "devices-realized", "memory-mapped", "kernel-loaded",
                          "vcpus-created", "vcpus-started", "guest-exit", "process exit"])
        let times = phases.compactMap { $0["ms"] as? Double }
        #expect(times.count == names.count && zip(times, times.dropFirst()).allSatisfy { $0 <= $1 }, "\(times)")

        let document = try String(contentsOfFile: svg, encoding: .utf8)
        let parser = XMLParser(data: Data(document.utf8))
        #expect(parser.parse(), "well-formed SVG")
        let bars = document.components(separatedBy: "<rect x=\"250\"").count - 1
        #expect(bars == (Harness.qemuPath != nil ? 8 : 4), "a bar per measured value")
    }

    /// `vmm bench firmware --json --svg`: the three firmware runs measured under vmm (and QEMU
    /// when installed), vmm's phases in order and increasing, a bar per measured value.
    @Test(.enabled(if: FirmwareGuests.biosInstalled, "needs SeaBIOS (apt-get install seabios qemu-system-data)"))
    func firmwareReportsTheThreeRunsAndDrawsAChart() throws {
        let svg = NSTemporaryDirectory() + "vmm-firmware-\(getpid()).svg"
        defer { try? FileManager.default.removeItem(atPath: svg) }
        let run = try Harness.vmm(["bench", "firmware", "--rounds", "1", "--json", "--svg", svg], timeoutSeconds: 600)
        #expect(run.status == 0, "\(run.output)")
        let json = try #require(run.output.split(separator: "\n").last { $0.hasPrefix("{") })
        let report = try #require(try JSONSerialization.jsonObject(with: Data(json.utf8)) as? [String: Any])
        for key in ["bootSector", "bootDisk", "biosKernel"] {
            let costs = try #require(report[key] as? [String: Any], "\(key)")
            let vmm = try #require(costs["vmm"] as? [String: Any])
            #expect((vmm["ms"] as? Double ?? 0) > 0 && (vmm["peakRSSKiB"] as? Int ?? 0) > 0, "\(key)")
            if Harness.qemuPath != nil {
                let qemu = try #require(costs["qemu"] as? [String: Any], "QEMU is installed, so it is measured")
                #expect((qemu["ms"] as? Double ?? 0) > 0)
            }
        }
        let phases = try #require(report["vmmPhases"] as? [[String: Any]])
        #expect(phases.compactMap { $0["phase"] as? String }.suffix(2) == ["guest-exit", "process exit"])
        let times = phases.compactMap { $0["ms"] as? Double }
        #expect(zip(times, times.dropFirst()).allSatisfy { $0 <= $1 }, "\(times)")
        let document = try String(contentsOfFile: svg, encoding: .utf8)
        #expect(XMLParser(data: Data(document.utf8)).parse(), "well-formed SVG")
        #expect(document.components(separatedBy: "<rect x=\"250\"").count - 1 == (Harness.qemuPath != nil ? 6 : 3))
    }

    /// `vmm -version` answers without building anything, and `VMM_STARTUP_TRACE` adds the
    /// trace and the peak-RSS line on standard error only.
    @Test func versionIsAnsweredFirstAndTraced() throws {
        let plain = try ChildProcess.run([try #require(Harness.vmmPath), "-version"])
        #expect(plain.status == 0 && plain.output.hasPrefix("vmm version ") && !plain.output.contains("vmm-startup"))
        let traced = try ChildProcess.run([try #require(Harness.vmmPath), "-version"], environment: ["VMM_STARTUP_TRACE=1"])
        #expect(traced.output.contains("vmm-startup main "))
        let kib = traced.output.split(separator: "\n").last { $0.hasPrefix("vmm-peak-rss-kib ") }
            .flatMap { Int($0.split(separator: " ")[1]) }
        #expect((kib ?? 0) > 0, "\(traced.output)")
    }
}
