import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// One finished run of a child process, as a benchmark wants it: what it printed, how it ended,
/// how long it took from spawn to exit, and its peak resident memory (from wait4's rusage, so
/// the figure is the child's own, not the sum of every child's).
struct ChildRun: Sendable {
    var output: String
    var status: Int32
    var wallMilliseconds: Double
    var peakRSSKiB: Int
}

enum ChildProcess {
    /// Runs `arguments[0]` (looked up in PATH) with stdout and stderr captured to a file,
    /// stdin from /dev/null.
    static func run(_ arguments: [String]) throws -> ChildRun {
        let outPath = FileManager.default.temporaryDirectory
            .appendingPathComponent("vmm-bench-\(getpid())-\(UInt32.random(in: 0...UInt32.max)).out").path
        defer { unlink(outPath) }

        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 1, outPath, O_WRONLY | O_CREAT | O_TRUNC, 0o600)
        posix_spawn_file_actions_adddup2(&actions, 1, 2)

        let argv: [UnsafeMutablePointer<CChar>?] = arguments.map { strdup($0) } + [nil]
        defer { argv.forEach { free($0) } }

        var pid: pid_t = 0
        let start = ContinuousClock.now
        let rc = posix_spawnp(&pid, arguments[0], &actions, nil, argv, environ)
        guard rc == 0 else {
            throw BenchError("cannot start \(arguments[0]): \(String(cString: strerror(rc)))")
        }
        var status: Int32 = 0
        var usage = rusage()
        while wait4(pid, &status, 0, &usage) < 0 {
            guard errno == EINTR else { throw BenchError("wait4 failed: \(String(cString: strerror(errno)))") }
        }
        let elapsed = ContinuousClock.now - start
        let ms = Double(elapsed.components.seconds) * 1000 + Double(elapsed.components.attoseconds) / 1e15
        let output = (try? String(contentsOfFile: outPath, encoding: .utf8)) ?? ""
        // WIFEXITED / WEXITSTATUS by hand: the macros don't import.
        let exitStatus: Int32 = (status & 0x7f) == 0 ? (status >> 8) & 0xff : 128 + (status & 0x7f)
        return ChildRun(output: output, status: exitStatus, wallMilliseconds: ms, peakRSSKiB: Int(usage.ru_maxrss))
    }

    /// The absolute path of `name` in PATH, or nil.
    static func which(_ name: String) -> String? {
        let path = ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin"
        for dir in path.split(separator: ":") {
            let candidate = "\(dir)/\(name)"
            if access(candidate, X_OK) == 0 { return candidate }
        }
        return nil
    }
}

/// A benchmark that could not run, with the reason.
struct BenchError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}
