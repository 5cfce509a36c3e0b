import Synchronization
import Testing
import TestSupport
import VMMSys

/// The I/O thread's rounds: a handler that always has more work cannot starve another.
@Suite struct IOThreadTests {
    @Test func aFloodingHandlerDelaysAnotherByOneRoundAtMost() throws {
        let thread = try IOThread()
        let flood = try EventNotifier(), other = try EventNotifier()
        let kickedAt = 1000
        let floodTurns = Atomic<Int>(0)
        let seenAt = Mutex<Int?>(nil)
        try thread.watch(flood) {
            // The kick comes from inside flood turn `kickedAt`, so it lands between that turn and
            // the next whatever the scheduler does.
            if floodTurns.add(1, ordering: .relaxed).newValue == kickedAt { other.set() }
            return .again                                       // always more work
        }
        try thread.watch(other) {
            seenAt.withLock { $0 = floodTurns.load(ordering: .relaxed) }
            return .idle
        }
        thread.start()
        defer { thread.stop() }
        flood.set()
        pollUntil { seenAt.withLock { $0 } != nil }
        let served = try #require(seenAt.withLock { $0 }, "the other handler never ran")
        // Kicked during flood turn k: it runs in the round after that, behind at most one more
        // flood turn.
        #expect(served >= kickedAt && served - kickedAt <= 1)
    }

    @Test func laterTurnsRunWithoutAKick() throws {
        let thread = try IOThread()
        let n = try EventNotifier()
        let turns = Atomic<Int>(0)
        try thread.watch(n) {
            let t = turns.add(1, ordering: .relaxed).newValue
            return t < 3 ? .at(.now + .milliseconds(5)) : .idle
        }
        thread.start()
        defer { thread.stop() }
        n.set()
        #expect(pollUntil { turns.load(ordering: .relaxed) >= 3 })
        #expect(turns.load(ordering: .relaxed) == 3)
    }
}
