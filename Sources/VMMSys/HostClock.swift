#if canImport(Glibc)
import Glibc
#endif

/// The host's clocks (`clock_gettime`), without Foundation's `Date`: a monotonic one for
/// timeouts, rate limits and measurements, and the wall clock for timestamps a guest or a client
/// sees (the RTC, QMP events).
public enum HostClock {
    /// CLOCK_MONOTONIC in nanoseconds (wraps after ~584 years of uptime).
    public static func monotonicNanoseconds() -> UInt64 {
        let t = now(CLOCK_MONOTONIC)
        return UInt64(truncatingIfNeeded: t.seconds) &* 1_000_000_000 &+ UInt64(truncatingIfNeeded: t.nanoseconds)
    }

    /// CLOCK_REALTIME: seconds and nanoseconds since the Unix epoch.
    public static func realtime() -> (seconds: Int64, nanoseconds: Int64) { now(CLOCK_REALTIME) }

    private static func now(_ clock: clockid_t) -> (seconds: Int64, nanoseconds: Int64) {
        var ts = timespec()
        // SAFETY: clock_gettime writes one timespec into the local.
        unsafe clock_gettime(clock, &ts)
        return (Int64(ts.tv_sec), Int64(ts.tv_nsec))
    }
}
