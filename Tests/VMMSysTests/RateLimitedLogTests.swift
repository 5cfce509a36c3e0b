import Synchronization
import Testing
import VMMSys

/// The throttle for guest-triggerable log lines: a burst per window, then silence counted and
/// reported on the next line that passes.
@Suite struct RateLimitedLogTests {
    final class FakeClock: Sendable {
        let ns = Atomic<UInt64>(1_000)
        var read: @Sendable () -> UInt64 { { self.ns.load(ordering: .relaxed) } }
        func advance(seconds: UInt64) { ns.add(seconds * 1_000_000_000, ordering: .relaxed) }
    }

    @Test func burstThenSuppressedThenReported() {
        let clock = FakeClock()
        let limiter = RateLimitedLog(burst: 3, intervalSeconds: 5, now: clock.read)
        var lines: [String] = []
        var built = 0
        for i in 0..<1000 {
            limiter.log({ lines.append($0) }) { built += 1; return "event \(i)" }
        }
        #expect(lines == ["event 0", "event 1", "event 2"])
        #expect(built == 3)                                 // suppressed messages are never built
        #expect(limiter.suppressedCount == 997)
        clock.advance(seconds: 4)
        #expect(limiter.log({ lines.append($0) }) { "still quiet" } == false)
        clock.advance(seconds: 1)
        limiter.log({ lines.append($0) }) { "next window" }
        #expect(lines.last == "next window (998 similar messages suppressed)")
        limiter.log({ lines.append($0) }) { "and one more" }
        #expect(lines.last == "and one more")
        #expect(limiter.suppressedCount == 998)
    }

    @Test func clockWrapAndHugeIntervalNeverTrap() {
        let clock = FakeClock()
        clock.ns.store(UInt64.max - 10, ordering: .relaxed)
        let limiter = RateLimitedLog(burst: 0, intervalSeconds: UInt64.max, now: clock.read)
        #expect(limiter.burst == 1)
        #expect(limiter.intervalNanoseconds == UInt64.max)
        #expect(limiter.admit() == 0)
        clock.ns.store(5, ordering: .relaxed)                 // the clock wrapped
        #expect(limiter.admit() == nil)
    }

    @Test func concurrentEventsPassAtMostBurst() async {
        let limiter = RateLimitedLog(burst: 10, intervalSeconds: 3600)
        let passed = await withTaskGroup(of: Int.self) { group in
            for _ in 0..<8 {
                group.addTask { (0..<500).filter { _ in limiter.admit() != nil }.count }
            }
            return await group.reduce(0, +)
        }
        #expect(passed == 10)
        #expect(limiter.suppressedCount == 3990)
    }
}
