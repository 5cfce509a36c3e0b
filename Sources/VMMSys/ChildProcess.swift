#if canImport(Glibc)
import Glibc
#endif

/// One finished run of a child process, as benchmarks and end-to-end tests want it: what it
/// printed (stdout and stderr together), how it ended, how long it took from spawn to exit, and
/// its own peak resident memory (from wait4's rusage, so it is this child's, not every child's).
public struct ChildRun: Sendable {
    public var output: String
    /// Exit status, or 128 + signal number when killed by a signal (the shell's convention).
    public var status: Int32
    public var wallMilliseconds: Double
    public var peakRSSKiB: Int
}

/// Spawns programs with posix_spawn and reaps them with wait4.
public enum ChildProcess {
    /// Runs `arguments[0]` (looked up in PATH) with stdin from `stdinPath` (default /dev/null)
    /// and stdout+stderr captured; kills it after `timeoutSeconds` (status then 128 + SIGKILL).
    public static func run(_ arguments: [String], timeoutSeconds: Int = 600, stdinPath: String = "/dev/null") throws(SystemError) -> ChildRun {
        var template = Array("/tmp/vmm-child-XXXXXX".utf8CString)
        let outFD = template.withUnsafeMutableBufferPointer { mkstemp($0.baseAddress!) }
        guard outFD >= 0 else { throw SystemError(operation: "mkstemp", errno: currentErrno()) }
        let outPath = String(cString: template.map { UInt8(bitPattern: $0) })
        defer { close(outFD); unlink(outPath) }

        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, stdinPath, O_RDONLY, 0)
        posix_spawn_file_actions_adddup2(&actions, outFD, 1)
        posix_spawn_file_actions_adddup2(&actions, outFD, 2)

        let argv: [UnsafeMutablePointer<CChar>?] = arguments.map { strdup($0) } + [nil]
        defer { argv.forEach { free($0) } }

        var pid: pid_t = 0
        var start = timespec()
        clock_gettime(CLOCK_MONOTONIC, &start)
        let rc = posix_spawnp(&pid, arguments[0], &actions, nil, argv, environ)
        guard rc == 0 else {
            throw SystemError(operation: "posix_spawnp", arguments: arguments[0], errno: rc)
        }
        var status: Int32 = 0
        var usage = rusage()
        var waited = 0
        while true {
            let r = wait4(pid, &status, timeoutSeconds > 0 ? WNOHANG : 0, &usage)
            if r == pid { break }
            if r < 0 {
                if currentErrno() == EINTR { continue }
                throw SystemError(operation: "wait4", arguments: "pid=\(pid)", errno: currentErrno())
            }
            usleep(2_000)
            waited += 2
            if waited >= timeoutSeconds * 1000 { kill(pid, SIGKILL) }
        }
        var end = timespec()
        clock_gettime(CLOCK_MONOTONIC, &end)
        let ms = Double(end.tv_sec - start.tv_sec) * 1000 + Double(end.tv_nsec - start.tv_nsec) / 1e6

        var bytes: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 65536)
        lseek(outFD, 0, SEEK_SET)
        while true {
            let n = buffer.withUnsafeMutableBytes { read(outFD, $0.baseAddress, $0.count) }
            if n <= 0 { break }
            bytes.append(contentsOf: buffer[0..<n])
        }
        // WIFEXITED / WEXITSTATUS by hand: the macros don't import.
        let exitStatus: Int32 = (status & 0x7f) == 0 ? (status >> 8) & 0xff : 128 + (status & 0x7f)
        return ChildRun(output: String(decoding: bytes, as: UTF8.self), status: exitStatus,
                        wallMilliseconds: ms, peakRSSKiB: Int(usage.ru_maxrss))
    }

    /// The absolute path of `name` found in PATH, or nil.
    public static func which(_ name: String) -> String? {
        let path = getenv("PATH").map { String(cString: $0) } ?? "/usr/bin:/bin"
        for dir in path.split(separator: ":") {
            let candidate = "\(dir)/\(name)"
            if access(candidate, X_OK) == 0 { return candidate }
        }
        return nil
    }
}
