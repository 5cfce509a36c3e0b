import CKVM
import SystemPackage
import VMMSys
#if canImport(Glibc)
import Glibc
#endif

/// One finished run of a child process, as benchmarks and end-to-end tests want it: what it
/// printed (stdout and stderr together), how it ended, how long it took from spawn to exit, and
/// its own peak resident memory (from wait4's rusage, so it is this child's, not every child's).
public struct ChildRun: Sendable {
    /// Everything it wrote to stdout and stderr, interleaved as written, decoded as UTF-8.
    public var output: String
    /// Exit status, or 128 + signal number when killed by a signal (the shell's convention).
    public var status: Int32
    /// Spawn to reaped, in milliseconds of CLOCK_MONOTONIC.
    public var wallMilliseconds: Double
    /// Peak resident set in KiB (wait4's `ru_maxrss`, which also counts what the child shared with
    /// this process before exec).
    public var peakRSSKiB: Int
    /// CLOCK_MONOTONIC just before the spawn: what a child's own monotonic timestamps
    /// (`StartupTrace`) are measured from.
    public var spawnedAtNanoseconds: UInt64
}

/// Spawns programs with posix_spawn and reaps them with wait4: the benchmarks run `vmm` and
/// QEMU with it, the tests run `vmm`, QEMU and the guest toolchain. Not part of the machine.
public enum ChildProcess {
    /// Runs `arguments[0]` (looked up in PATH) with stdin from `stdinPath` (default /dev/null)
    /// and stdout+stderr captured; kills it after `timeoutSeconds` (status then 128 + SIGKILL).
    /// `environment` entries ("NAME=VALUE") are added to this process's environment.
    public static func run(_ arguments: [String], timeoutSeconds: Int = 600, stdinPath: String = "/dev/null",
                           environment: [String] = []) throws(SystemError) -> ChildRun {
        guard let program = arguments.first else {
            throw SystemError(operation: "posix_spawnp", arguments: "(no program)", code: .invalidArgument)
        }
        var template = Array("/tmp/vmm-child-XXXXXX".utf8CString)
        // SAFETY: mkstemp rewrites the X's of the NUL-terminated template in place.
        let rawFD = unsafe template.withUnsafeMutableBufferPointer { unsafe mkstemp($0.baseAddress!) }
        guard rawFD >= 0 else { throw SystemError(operation: "mkstemp", errno: currentErrno()) }
        let output = FileDescriptor(rawValue: rawFD)
        let outPath = String(decoding: template.dropLast().map { UInt8(bitPattern: $0) }, as: UTF8.self)
        defer {
            try? output.close()
            // SAFETY: the String-to-C-string conversion is valid for the call.
            unsafe unlink(outPath)
        }

        // SAFETY: `actions` is initialized here and destroyed on every path out; the strings it
        // is given are copied by glibc.
        var actions = unsafe posix_spawn_file_actions_t()
        unsafe posix_spawn_file_actions_init(&actions)
        defer { unsafe posix_spawn_file_actions_destroy(&actions) }
        unsafe posix_spawn_file_actions_addopen(&actions, 0, stdinPath, O_RDONLY, 0)
        unsafe posix_spawn_file_actions_adddup2(&actions, rawFD, 1)
        unsafe posix_spawn_file_actions_adddup2(&actions, rawFD, 2)

        // SAFETY: each strdup'd string is freed after the spawn; the array ends with nil as exec wants.
        let argv: [UnsafeMutablePointer<CChar>?] = unsafe arguments.map { unsafe strdup($0) } + [nil]
        defer { for unsafe p in unsafe argv { unsafe free(p) } }

        // SAFETY: environ is the NUL-terminated environment array; each entry is copied by strdup.
        var envp: [UnsafeMutablePointer<CChar>?] = unsafe []
        if !environment.isEmpty {
            var i = 0
            while let entry = unsafe environ[i] { unsafe envp.append(unsafe strdup(entry)); i += 1 }
            unsafe envp += unsafe environment.map { unsafe strdup($0) }
            unsafe envp.append(nil)
        }
        defer { for unsafe p in unsafe envp { unsafe free(p) } }

        var pid: pid_t = 0
        let start = HostClock.monotonicNanoseconds()
        // SAFETY: argv and the environment are NUL-terminated arrays of C strings alive across the call.
        let rc = environment.isEmpty ? unsafe posix_spawnp(&pid, program, &actions, nil, argv, environ)
            : unsafe posix_spawnp(&pid, program, &actions, nil, argv, envp)
        guard rc == 0 else { throw SystemError(operation: "posix_spawnp", arguments: program, errno: rc) }
        // Wait for the exit without polling on a timer, so the wall time is exact: poll the
        // child's pidfd with the timeout, then reap it (kill it first if the time ran out).
        let pidfd = ckvm_pidfd_open(pid)
        if pidfd >= 0 {
            defer { close(pidfd) }
            var entry = pollfd(fd: pidfd, events: Int16(POLLIN), revents: 0)
            let limit = timeoutSeconds > 0 ? Int32(clamping: timeoutSeconds * 1000) : -1
            // SAFETY: poll reads and writes exactly one pollfd, the local above.
            while unsafe poll(&entry, 1, limit) < 0 && errno == EINTR {}
            if entry.revents == 0 { kill(pid, SIGKILL) }
        } else if timeoutSeconds > 0 {
            // No pidfd (kernel < 5.3): a watchdog kills the child when the time runs out.
            let deadline = HostClock.monotonicNanoseconds() + UInt64(timeoutSeconds) * 1_000_000_000
            let child = pid
            try? HostThread.start(name: "child-watchdog") {
                while HostClock.monotonicNanoseconds() < deadline {
                    usleep(10_000)
                    if kill(child, 0) != 0 { return }
                }
                kill(child, SIGKILL)
            }
        }
        var status: Int32 = 0
        var usage = rusage()
        _ = try retryingOnInterrupt("wait4", arguments: "pid=\(pid)") {
            // SAFETY: wait4 writes one Int32 and one rusage into these locals.
            unsafe wait4(pid, &status, 0, &usage)
        }
        let milliseconds = Double(HostClock.monotonicNanoseconds() &- start) / 1e6

        var bytes: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 65536)
        var offset: Int64 = 0
        while true {
            // SAFETY: the kernel writes at most buffer.count bytes into the buffer.
            let n = (try? unsafe buffer.withUnsafeMutableBytes { try unsafe output.read(fromAbsoluteOffset: offset, into: $0) }) ?? 0
            if n <= 0 { break }
            bytes.append(contentsOf: buffer[0..<n])
            offset += Int64(n)
        }
        // WIFEXITED / WEXITSTATUS by hand: the macros don't import.
        let exitStatus: Int32 = (status & 0x7f) == 0 ? (status >> 8) & 0xff : 128 + (status & 0x7f)
        return ChildRun(output: String(decoding: bytes, as: UTF8.self), status: exitStatus,
                        wallMilliseconds: milliseconds, peakRSSKiB: Int(usage.ru_maxrss), spawnedAtNanoseconds: start)
    }

    /// The absolute path of `name` found in PATH, or nil.
    public static func which(_ name: String) -> String? {
        // SAFETY: getenv returns NULL or a NUL-terminated string that stays valid while PATH is unchanged.
        let path = unsafe getenv("PATH").map { unsafe String(cString: $0) } ?? "/usr/bin:/bin"
        for dir in path.split(separator: ":") {
            let candidate = "\(dir)/\(name)"
            // SAFETY: the String-to-C-string conversion is valid for the call.
            if unsafe access(candidate, X_OK) == 0 { return candidate }
        }
        return nil
    }
}
