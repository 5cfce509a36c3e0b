#if canImport(Glibc)
import Glibc
#endif

/// Where start-up time goes: with `VMM_STARTUP_TRACE=1` in the environment, each phase of a run
/// (command line parsed, VM created, memory mapped, devices realized, kernel loaded, vCPUs
/// created, vCPUs started, the guest's exit request) prints one line on standard error,
/// `vmm-startup PHASE NANOSECONDS`, stamped with CLOCK_MONOTONIC, which is system-wide: the
/// parent (`vmm bench startup`) subtracts its own spawn time to get exec-relative offsets.
/// Off, a mark costs one load of a flag read once.
package enum StartupTrace {
    /// Whether tracing is on (read once, at first use).
    // SAFETY: getenv returns NULL or a pointer into the environment; only compared with NULL.
    package static let enabled: Bool = unsafe getenv("VMM_STARTUP_TRACE") != nil

    /// The line prefix a parent looks for.
    package static let prefix = "vmm-startup "

    /// Records that `phase` has been reached now.
    @inline(__always)
    package static func mark(_ phase: StaticString) {
        guard enabled else { return }
        // Written with write(2) directly, so tracing does not itself grow the process (see
        // writeStandardOutputDirectly).
        writeDirectly(2, prefix + phase.description + " " + String(HostClock.monotonicNanoseconds()) + "\n")
    }

    /// The line prefix of the peak-RSS report `finish()` prints.
    package static let peakRSSPrefix = "vmm-peak-rss-kib "

    /// At exit: prints this process's peak resident set (VmHWM from /proc/self/status). The
    /// process's own figure, because a parent's wait4 `ru_maxrss` also counts the memory the
    /// child shared with its parent before exec (posix_spawn's vfork), which for a program as
    /// small as `vmm -version` is more than the program itself.
    package static func finish() {
        guard enabled, let kib = peakResidentKiB() else { return }
        writeDirectly(2, peakRSSPrefix + String(kib) + "\n")
    }

    /// VmHWM of this process in KiB, or nil if /proc is not readable.
    package static func peakResidentKiB() -> Int? {
        // SAFETY: the path literal is a NUL-terminated static string.
        let fd = unsafe open("/proc/self/status", O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var text: [UInt8] = []
        while true {
            let chunk = readSome(fd, maxBytes: 4096)
            if chunk.isEmpty { break }
            text += chunk
        }
        for line in String(decoding: text, as: UTF8.self).split(separator: "\n") where line.hasPrefix("VmHWM:") {
            return line.split(separator: " ").dropFirst().first.flatMap { Int($0) }
        }
        return nil
    }

    /// The peak RSS a child reported with `finish()`, if it did.
    package static func peakRSS(in output: String) -> Int? {
        output.split(separator: "\n").last { $0.hasPrefix(peakRSSPrefix) }.flatMap { Int($0.dropFirst(peakRSSPrefix.count)) }
    }

    /// Parses the marks out of a child's output: (phase, monotonic nanoseconds), in order.
    package static func marks(in output: String) -> [(phase: String, nanoseconds: UInt64)] {
        output.split(separator: "\n").compactMap { line in
            guard line.hasPrefix(prefix) else { return nil }
            let fields = line.dropFirst(prefix.count).split(separator: " ")
            guard fields.count == 2, let ns = UInt64(fields[1]) else { return nil }
            return (String(fields[0]), ns)
        }
    }
}
