#if canImport(Glibc)
import Glibc
#endif

/// Polls `condition` about every millisecond until it holds or `timeout` passes; returns whether
/// it held. How a test waits for another thread: against a generous deadline, never a fixed
/// sleep.
@discardableResult
public func pollUntil(timeout: Duration = .seconds(10), _ condition: () throws -> Bool) rethrows -> Bool {
    let clock = ContinuousClock()
    let deadline = clock.now + timeout
    while clock.now < deadline {
        if try condition() { return true }
        usleep(1_000)
    }
    return try condition()
}
