import Synchronization
import SystemPackage
import Testing
import TestSupport
import VMMSys

/// The I/O thread's plain-descriptor watches: level-triggered readiness, stopping and resuming
/// polling (a receive queue without buffers must not spin on a readable tap), `schedule`.
@Suite struct DescriptorWatchTests {
    @Test func readinessStopAndResume() throws {
        let thread = try IOThread()
        let pair = try SocketPair(.sequencedPackets)
        let turns = Atomic<Int>(0)
        let consume = Atomic<Bool>(false)
        let watch = try thread.watch(pair.first, events: .readable) { events in
            turns.add(1, ordering: .relaxed)
            if consume.load(ordering: .relaxed) {
                var b = [UInt8](repeating: 0, count: 64)
                _ = NonBlockingIO.read(pair.first, into: &b, count: 64)
            }
            return .idle
        }
        thread.start()
        defer { thread.stop() }
        // Readable and never drained: level-triggered, the handler keeps running...
        _ = NonBlockingIO.write(pair.second, [1, 2, 3][...])
        #expect(pollUntil { turns.load(ordering: .relaxed) > 100 })
        // ...until polling stops: then it does not run at all, however long we look.
        try thread.setEvents(watch, [])
        #expect(thread.events(of: watch) == [])
        let settled = turns.load(ordering: .relaxed)
        #expect(pollUntil(timeout: .milliseconds(200)) { turns.load(ordering: .relaxed) > settled + 1 } == false)
        // schedule() runs it once with no events (the datagram stays).
        thread.schedule(watch)
        #expect(pollUntil { turns.load(ordering: .relaxed) == settled + 1 })
        // Resumed: readiness runs it again; this time it drains the descriptor, and then the
        // handler is not run any more.
        consume.store(true, ordering: .relaxed)
        try thread.setEvents(watch, .readable)
        #expect(pollUntil { turns.load(ordering: .relaxed) >= settled + 2 })
        let drained = turns.load(ordering: .relaxed)
        #expect(pollUntil(timeout: .milliseconds(200)) { turns.load(ordering: .relaxed) > drained } == false)
        thread.unwatch(watch)
    }

    @Test func writabilityAndUnwatch() throws {
        let thread = try IOThread()
        let pair = try SocketPair(.sequencedPackets)
        let writable = Atomic<Int>(0)
        let watch = try thread.watch(pair.first, events: .writable) { events in
            if events.contains(.writable) { writable.add(1, ordering: .relaxed) }
            return .idle
        }
        thread.start()
        defer { thread.stop() }
        #expect(pollUntil { writable.load(ordering: .relaxed) > 0 })
        thread.unwatch(watch)
        let after = writable.load(ordering: .relaxed)
        #expect(pollUntil(timeout: .milliseconds(200)) { writable.load(ordering: .relaxed) > after + 1 } == false)
    }
}
