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
        let readableTurns = Atomic<Int>(0), bareTurns = Atomic<Int>(0)
        let consume = Atomic<Bool>(false)
        let watch = try thread.watch(pair.first, events: .readable) { events in
            if events.contains(.readable) { readableTurns.add(1, ordering: .relaxed) } else { bareTurns.add(1, ordering: .relaxed) }
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
        #expect(pollUntil { readableTurns.load(ordering: .relaxed) > 100 })
        // ...until polling stops: then at most the round already fetched runs it once more.
        try thread.setEvents(watch, [])
        #expect(thread.events(of: watch) == [])
        let stopped = readableTurns.load(ordering: .relaxed)
        #expect(pollUntil(timeout: .milliseconds(200)) { readableTurns.load(ordering: .relaxed) > stopped + 1 } == false)
        // schedule() runs it once, with no events (the datagram stays).
        thread.schedule(watch)
        #expect(pollUntil { bareTurns.load(ordering: .relaxed) == 1 })
        // Resumed: readiness runs it again; it drains the descriptor, and is not run after that.
        let beforeResume = readableTurns.load(ordering: .relaxed)
        consume.store(true, ordering: .relaxed)
        try thread.setEvents(watch, .readable)
        #expect(pollUntil { readableTurns.load(ordering: .relaxed) > beforeResume })
        let drained = readableTurns.load(ordering: .relaxed)
        #expect(pollUntil(timeout: .milliseconds(200)) { readableTurns.load(ordering: .relaxed) > drained + 1 } == false)
        #expect(bareTurns.load(ordering: .relaxed) == 1)
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
