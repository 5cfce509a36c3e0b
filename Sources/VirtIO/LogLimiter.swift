import Logging
import Synchronization

/// Rate-limits log lines a guest can provoke at will: at most `burst` lines per `window`;
/// the next line after a quiet spell says how many were suppressed. A guest that breaks and
/// resets a device in a loop therefore costs a bounded amount of log output.
final class LogLimiter: Sendable {
    private let burst: Int
    private let window: Duration
    private let state = Mutex<(windowStart: ContinuousClock.Instant?, logged: Int, suppressed: Int)>((nil, 0, 0))

    init(burst: Int = 5, window: Duration = .seconds(60)) {
        self.burst = burst
        self.window = window
    }

    /// Logs `message` at `level` unless this window's burst is spent.
    func log(_ logger: Logger, _ message: @autoclosure () -> String, level: Logger.Level = .error) {
        let now = ContinuousClock.now
        let suppressed: Int? = state.withLock { s in
            if let start = s.windowStart, now - start < window {
                guard s.logged < burst else {
                    s.suppressed += 1
                    return nil
                }
            } else {
                s.windowStart = now
                s.logged = 0
            }
            s.logged += 1
            defer { s.suppressed = 0 }
            return s.suppressed
        }
        guard let suppressed else { return }
        let more = suppressed > 0 ? " (\(suppressed) similar messages suppressed)" : ""
        logger.log(level: level, "\(message())\(more)")
    }
}
