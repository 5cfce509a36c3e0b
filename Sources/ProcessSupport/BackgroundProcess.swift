import CKVM
import SystemPackage
import VMMSys
#if canImport(Glibc)
import Glibc
#endif

/// A child process left running while the caller talks to it (over a socket, a tap): stdout
/// and stderr go to a file that can be read at any time; `wait` reaps it within a deadline.
/// Spawned from the calling thread, so it inherits that thread's network namespace.
public final class BackgroundProcess: @unchecked Sendable {
    /// The child's process id.
    public let pid: pid_t
    private let outputPath: String
    private var exitStatus: Int32?

    /// Starts `arguments[0]` (looked up in PATH) with stdin from /dev/null.
    public init(_ arguments: [String]) throws(SystemError) {
        guard let program = arguments.first else { throw SystemError(operation: "posix_spawnp", arguments: "(no program)", code: .invalidArgument) }
        var template = Array("/tmp/vmm-bg-XXXXXX".utf8CString)
        // SAFETY: mkstemp rewrites the X's of the NUL-terminated template in place.
        let rawFD = unsafe template.withUnsafeMutableBufferPointer { unsafe mkstemp($0.baseAddress!) }
        guard rawFD >= 0 else { throw SystemError(operation: "mkstemp", errno: currentErrno()) }
        defer { close(rawFD) }
        outputPath = String(decoding: template.dropLast().map { UInt8(bitPattern: $0) }, as: UTF8.self)
        // SAFETY: `actions` is initialized here and destroyed on every path out.
        var actions = unsafe posix_spawn_file_actions_t()
        unsafe posix_spawn_file_actions_init(&actions)
        defer { unsafe posix_spawn_file_actions_destroy(&actions) }
        unsafe posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        unsafe posix_spawn_file_actions_adddup2(&actions, rawFD, 1)
        unsafe posix_spawn_file_actions_adddup2(&actions, rawFD, 2)
        // SAFETY: each strdup'd string is freed after the spawn; the array ends with nil.
        let argv: [UnsafeMutablePointer<CChar>?] = unsafe arguments.map { unsafe strdup($0) } + [nil]
        defer { for unsafe p in unsafe argv { unsafe free(p) } }
        // The child starts with no signal blocked and default dispositions, whatever the
        // spawning thread had (a test runner may block signals in its threads).
        // SAFETY: `attributes` is initialized here and destroyed on every path out; the sets
        // are locals alive across the calls.
        var attributes = posix_spawnattr_t()
        unsafe posix_spawnattr_init(&attributes)
        defer { unsafe posix_spawnattr_destroy(&attributes) }
        var empty = sigset_t(), all = sigset_t()
        unsafe sigemptyset(&empty)
        unsafe sigfillset(&all)
        unsafe posix_spawnattr_setsigmask(&attributes, &empty)
        unsafe posix_spawnattr_setsigdefault(&attributes, &all)
        unsafe posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF))
        var child: pid_t = 0
        // SAFETY: argv and environ are NUL-terminated arrays of C strings alive across the call.
        let rc = unsafe posix_spawnp(&child, program, &actions, &attributes, argv, environ)
        guard rc == 0 else { throw SystemError(operation: "posix_spawnp", arguments: program, errno: rc) }
        pid = child
    }

    deinit {
        if exitStatus == nil { kill(pid, SIGKILL); _ = wait(timeoutSeconds: 5) }
        // SAFETY: the String-to-C-string conversion is valid for the call.
        unsafe unlink(outputPath)
    }

    /// Everything printed so far.
    public var output: String {
        (try? readWholeFile(outputPath, maximumBytes: 64 << 20)).map { String(decoding: $0, as: UTF8.self) } ?? ""
    }

    /// Whether it is still running.
    public var isRunning: Bool {
        guard exitStatus == nil else { return false }
        var status: Int32 = 0
        // SAFETY: waitpid writes one Int32.
        if unsafe waitpid(pid, &status, WNOHANG) == pid { exitStatus = Self.decode(status); return false }
        return true
    }

    /// Waits for the exit (SIGKILL after `timeoutSeconds`); returns the exit status (128 +
    /// signal when killed). Waits on the child's pidfd, as ChildProcess does, rather than
    /// polling on a timer; without pidfds (Linux < 5.3) it checks every 2 ms.
    @discardableResult
    public func wait(timeoutSeconds: Double) -> Int32 {
        if let exitStatus { return exitStatus }
        let deadline = HostClock.monotonicNanoseconds() &+ UInt64(max(0, timeoutSeconds) * 1e9)
        let pidfd = ckvm_pidfd_open(pid)
        defer { if pidfd >= 0 { close(pidfd) } }
        var killed = false
        while true {
            var status: Int32 = 0
            // SAFETY: waitpid writes one Int32.
            let r = unsafe waitpid(pid, &status, WNOHANG)
            if r == pid {
                let decoded = Self.decode(status)
                exitStatus = decoded
                return decoded
            }
            if r < 0 && currentErrno() != EINTR { exitStatus = -1; return -1 }
            let now = HostClock.monotonicNanoseconds()
            if !killed && now >= deadline {
                kill(pid, SIGKILL)
                killed = true
            }
            if pidfd >= 0 {
                // Readable once the child has exited; the timeout only brings the kill.
                let left = killed ? 1000 : Int32(clamping: (deadline &- now) / 1_000_000 + 1)
                var entry = pollfd(fd: pidfd, events: Int16(POLLIN), revents: 0)
                // SAFETY: poll reads and writes exactly one pollfd, the local above.
                _ = unsafe poll(&entry, 1, left)
            } else {
                usleep(2000)
            }
        }
    }

    /// Sends SIGTERM.
    public func terminate() { kill(pid, SIGTERM) }

    private static func decode(_ status: Int32) -> Int32 { (status & 0x7f) == 0 ? (status >> 8) & 0xff : 128 + (status & 0x7f) }
}
