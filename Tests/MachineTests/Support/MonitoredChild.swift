import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// A child process watched while it runs: its stdout and stderr go to two files, and its open
/// descriptors and resident memory are read from /proc every few milliseconds until it exits
/// or a hard deadline kills it. The hostile-guest tests use it to check that what a guest does
/// cannot make the VMM hold more and more descriptors or memory, or print without bound.
struct MonitoredRun {
    /// One reading of /proc/PID: seconds since spawn, open descriptors, VmRSS in KiB.
    struct Sample { var seconds: Double; var descriptors: Int; var rssKiB: Int }

    var stdout: String
    var stderr: String
    /// Exit status, or 128 + signal number when a signal ended it (a Swift trap is SIGILL or
    /// SIGTRAP, so 132 or 133).
    var status: Int32
    var timedOut: Bool
    var seconds: Double
    var samples: [Sample]

    /// stderr split into lines (without an empty last one).
    var stderrLines: [Substring] { stderr.split(separator: "\n", omittingEmptySubsequences: true) }
}

enum MonitoredChild {
    /// Runs `executable` with `arguments`, stdin from /dev/null, sampling /proc every ~20 ms;
    /// SIGKILL after `timeoutSeconds`.
    static func run(_ executable: String, _ arguments: [String], timeoutSeconds: Double) throws -> MonitoredRun {
        let dir = FileManager.default.temporaryDirectory
        let tag = "\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        let outURL = dir.appendingPathComponent("monitored-\(tag).out")
        let errURL = dir.appendingPathComponent("monitored-\(tag).err")
        _ = FileManager.default.createFile(atPath: outURL.path, contents: nil)
        _ = FileManager.default.createFile(atPath: errURL.path, contents: nil)
        defer {
            try? FileManager.default.removeItem(at: outURL)
            try? FileManager.default.removeItem(at: errURL)
        }
        let out = try FileHandle(forWritingTo: outURL), err = try FileHandle(forWritingTo: errURL)
        let process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        process.standardInput = FileHandle(forReadingAtPath: "/dev/null")
        process.standardOutput = out
        process.standardError = err
        let start = ContinuousClock.now
        func elapsed() -> Double {
            let d = ContinuousClock.now - start
            return Double(d.components.seconds) + Double(d.components.attoseconds) / 1e18
        }
        try process.run()
        try out.close()
        try err.close()
        let pid = process.processIdentifier
        var samples: [MonitoredRun.Sample] = []
        var timedOut = false
        while process.isRunning {
            let t = elapsed()
            if t > timeoutSeconds {
                timedOut = true
                kill(pid, SIGKILL)
                break
            }
            if let fds = try? FileManager.default.contentsOfDirectory(atPath: "/proc/\(pid)/fd").count,
               let rss = residentKiB(pid) {
                samples.append(.init(seconds: t, descriptors: fds, rssKiB: rss))
            }
            usleep(20_000)       // the sampling period; exit is detected by isRunning, not by time
        }
        process.waitUntilExit()
        let status: Int32 = process.terminationReason == .uncaughtSignal
            ? 128 + process.terminationStatus : process.terminationStatus
        let stdout = (try? String(contentsOf: outURL, encoding: .utf8)) ?? ""
        let stderr = (try? String(contentsOf: errURL, encoding: .utf8)) ?? ""
        return MonitoredRun(stdout: stdout, stderr: stderr, status: status, timedOut: timedOut,
                            seconds: elapsed(), samples: samples)
    }

    /// VmRSS of `pid` in KiB, from /proc/PID/status.
    static func residentKiB(_ pid: Int32) -> Int? {
        guard let status = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8) else { return nil }
        for line in status.split(separator: "\n") where line.hasPrefix("VmRSS:") {
            return Int(line.dropFirst(6).split(whereSeparator: { $0 == " " || $0 == "\t" }).first ?? "")
        }
        return nil
    }
}
