import Foundation
import Synchronization
import Testing
import VMMSys
@testable import VirtIO

/// The I/O thread's rounds: a handler that always has more work cannot starve another.
@Suite struct IOThreadTests {
    /// The flood handler itself kicks the other notifier on its 1000th turn (so the kick's
    /// moment is exact, whatever the scheduler does); the other must run before the flood's
    /// next turn but one.
    @Test func aFloodingHandlerDelaysAnotherByOneRoundAtMost() throws {
        let thread = try IOThread()
        let flood = try EventNotifier(), other = try EventNotifier()
        let floodTurns = Atomic<Int>(0)
        let seenAt = Mutex<Int?>(nil)
        let kickTurn = 1000
        try thread.watch(flood) {
            let turn = floodTurns.add(1, ordering: .relaxed).newValue
            if turn == kickTurn { other.set() }
            return .again                                       // always more work
        }
        try thread.watch(other) {
            seenAt.withLock { $0 = floodTurns.load(ordering: .relaxed) }
            return .idle
        }
        thread.start()
        defer { thread.stop() }
        flood.set()
        let deadline = Date().addingTimeInterval(30)
        while seenAt.withLock({ $0 }) == nil && Date() < deadline { sched_yield() }
        let served = try #require(seenAt.withLock { $0 }, "the other handler never ran")
        #expect(served - kickTurn <= 1, "served after flood turn \(served), kicked at \(kickTurn)")
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
        let deadline = Date().addingTimeInterval(10)
        while turns.load(ordering: .relaxed) < 3 && Date() < deadline { sched_yield() }
        #expect(turns.load(ordering: .relaxed) == 3)
    }
}
