import Synchronization

/// Throttles a log line a guest can provoke over and over (a bad DMA descriptor, a device
/// refusing a register write): at most `burst` messages pass per `interval`; the rest are
/// counted and the first message of the next window says how many were dropped, e.g.
/// `fw_cfg DMA: descriptor at 0x... is not RAM (41 similar messages suppressed)`.
///
/// It decides only whether to log, so it works with any logger:
///
///     static let dmaErrors = RateLimitedLog()
///     dmaErrors.log { devicesLogger.warning("\($0)") } message: { "fw_cfg DMA: ..." }
///
/// The message is built only when it will be printed, so a flooding guest costs one lock and
/// a counter increment per event. One instance per kind of event (per device, or per class of
/// error) keeps one noisy guest error from hiding another.
/// QEMU has no common equivalent: guest errors go through `qemu_log_mask(LOG_GUEST_ERROR, …)`,
/// silent unless `-d guest_errors`, and a few sites use `warn_report_once()`; Linux's
/// `printk_ratelimited()` (burst 10 per 5 s) is the model here.
public final class RateLimitedLog: Sendable {
    /// Messages that may pass in one window.
    public let burst: Int
    /// The window's length in nanoseconds.
    public let intervalNanoseconds: UInt64

    private struct State {
        var windowStart: UInt64 = 0
        var started = false
        var passed = 0
        var suppressed = 0
        var suppressedTotal: UInt64 = 0
    }

    private let state = Mutex(State())
    private let now: @Sendable () -> UInt64

    /// - Parameters:
    ///   - burst: messages that may pass per window (at least 1).
    ///   - intervalSeconds: the window (Linux's default: 10 per 5 s).
    ///   - now: a monotonic clock in nanoseconds; tests inject their own.
    public init(burst: Int = 10, intervalSeconds: UInt64 = 5,
                now: @escaping @Sendable () -> UInt64 = RateLimitedLog.monotonicNanoseconds) {
        self.burst = max(burst, 1)
        self.intervalNanoseconds = intervalSeconds.multipliedReportingOverflow(by: 1_000_000_000).overflow
            ? UInt64.max : intervalSeconds * 1_000_000_000
        self.now = now
    }

    /// Whether a message may be logged now: `nil` if not (it is counted as suppressed),
    /// otherwise the number of messages suppressed since the last one that passed (append
    /// it to the message when non-zero; `log(_:message:)` does).
    public func admit() -> Int? {
        let t = now()
        return state.withLock { s -> Int? in
            if !s.started || t &- s.windowStart >= intervalNanoseconds {
                s.started = true
                s.windowStart = t
                s.passed = 0
            }
            guard s.passed < burst else {
                s.suppressed &+= 1
                s.suppressedTotal &+= 1
                return nil
            }
            s.passed += 1
            defer { s.suppressed = 0 }
            return s.suppressed
        }
    }

    /// Calls `emit` with the message (plus a note of how many were suppressed before it)
    /// unless the limit is reached. `message` is evaluated only when the line is emitted.
    /// Returns whether it was emitted.
    @discardableResult
    public func log(_ emit: (String) -> Void, message: () -> String) -> Bool {
        guard let dropped = admit() else { return false }
        emit(dropped == 0 ? message() : "\(message()) (\(dropped) similar messages suppressed)")
        return true
    }

    /// Messages suppressed since creation (for tests and `info` commands).
    public var suppressedCount: UInt64 { state.withLock { $0.suppressedTotal } }

    /// CLOCK_MONOTONIC in nanoseconds (`HostClock.monotonicNanoseconds`).
    public static let monotonicNanoseconds: @Sendable () -> UInt64 = { HostClock.monotonicNanoseconds() }
}
