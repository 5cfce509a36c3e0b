import Synchronization
import VMMSys

/// The memory API at scale, measured through its public entry points: n I/O regions side by
/// side in one address space, each with one datamatch ioeventfd, and one listener taking
/// ioeventfds (as the KVM accelerator does). Three operations are timed, end to end (render,
/// region diff, ioeventfd collection and diff, listener calls):
/// - **build**: one transaction mapping all n regions and adding their ioeventfds;
/// - **move one**: one transaction moving the middle region elsewhere (a guest reprogramming
///   one BAR);
/// - **add one**: adding one more ioeventfd to the middle region (a virtio queue started).
///
/// Besides times, each case counts the eventfd listener calls the last two made: a move is
/// one `eventfdDel` and one `eventfdAdd` whatever n is, an added ioeventfd one `eventfdAdd`.
/// `vmm bench memory` prints these; tests check the counts (never the times).
package enum MemoryBenchmark {
    /// One size's figures. Times are medians over the repetitions, in milliseconds.
    package struct Case: Sendable, Equatable {
        package var regions: Int
        package var buildMs: Double
        package var moveOneMs: Double
        package var addOneMs: Double
        /// Eventfd listener calls one move made (the same on every repetition, or -1).
        package var moveCalls: Int
        /// Eventfd listener calls one added ioeventfd made (the same on every repetition, or -1).
        package var addOneCalls: Int
    }

    /// The sizes `vmm bench memory` measures.
    package static let defaultSizes = [1_000, 10_000, 100_000]

    /// The largest size accepted (about 0.5 GiB of host memory at this size).
    package static let maximumRegions = 1_000_000

    /// Measures one size. See `run(sizes:repetitions:)`.
    package static func run(regions n: Int, repetitions: Int = 5) throws(SystemError) -> Case {
        try run(sizes: [n], repetitions: repetitions)[0]
    }

    /// Builds one space per size (timing each build), then measures `repetitions` moves and
    /// as many added ioeventfds per size, the sizes taking turns so that a shift in the host's
    /// load affects them alike (the ratio between sizes is what the figures are read for).
    /// Needs one file descriptor per size (a size's ioeventfds share one eventfd).
    /// - Throws: an eventfd's creation failure.
    package static func run(sizes: [Int], repetitions: Int = 5) throws(SystemError) -> [Case] {
        let repetitions = max(repetitions, 1)
        var fixtures: [Fixture] = []
        for n in sizes { fixtures.append(try Fixture(regions: min(max(n, 1), maximumRegions))) }
        var moveTimes = Array(repeating: [Double](), count: fixtures.count)
        var moveCalls = moveTimes.map { _ in [Int]() }
        var addTimes = moveTimes, addCalls = moveCalls
        for k in 0..<repetitions {
            for (i, f) in fixtures.enumerated() {
                let (t, c) = f.moveOne(away: k % 2 == 0)
                moveTimes[i].append(t)
                moveCalls[i].append(c)
            }
        }
        for _ in 0..<repetitions {
            for (i, f) in fixtures.enumerated() {
                let (t, c) = f.addOne()
                addTimes[i].append(t)
                addCalls[i].append(c)
            }
        }
        return fixtures.enumerated().map { i, f in
            f.finish()
            return Case(regions: f.regions.count, buildMs: f.buildMs, moveOneMs: median(moveTimes[i]),
                        addOneMs: median(addTimes[i]), moveCalls: same(moveCalls[i]), addOneCalls: same(addCalls[i]))
        }
    }

    /// One size's address space, built (and timed) at creation.
    final class Fixture {
        let system = MemorySystem()
        let root = MemoryRegion.container(name: "bench", size: UInt128(1) << 64)
        let space: AddressSpace
        let listener = EventfdCountingListener()
        let notifier: EventNotifier
        var regions: [MemoryRegion] = []
        var buildMs = 0.0
        static let stride: UInt64 = 0x1000

        init(regions n: Int) throws(SystemError) {
            space = AddressSpace(root: root, name: "bench", system: system)
            space.register(listener)
            notifier = try EventNotifier()
            let ops = MemoryRegionOps(read: { _, _ in 0 }, write: { _, _, _ in })
            regions.reserveCapacity(n)
            buildMs = MemoryBenchmark.time {
                system.withTransaction {
                    for i in 0..<n {
                        let r = MemoryRegion.io(name: "dev", size: 0x100, ops: ops)
                        root.addSubregion(r, at: UInt64(i) * Self.stride)
                        try? r.addEventfd(offset: 0, size: 4, matchData: true, data: UInt64(i), notifier: notifier)
                        regions.append(r)
                    }
                }
            }
        }

        var moved: MemoryRegion { regions[regions.count / 2] }

        /// Moves the middle region past the last one (or back home): time and eventfd calls.
        func moveOne(away: Bool) -> (Double, Int) {
            let to = away ? UInt64(regions.count + 1) * Self.stride : UInt64(regions.count / 2) * Self.stride
            let before = listener.calls
            let t = MemoryBenchmark.time { system.withTransaction { moved.setAddress(to) } }
            return (t, listener.calls - before)
        }

        /// Adds one ioeventfd to the middle region (timed), then removes it (not timed).
        func addOne() -> (Double, Int) {
            let before = listener.calls
            let t = MemoryBenchmark.time {
                try? moved.addEventfd(offset: 0x10, size: 4, matchData: true, data: 0xfa, notifier: notifier)
            }
            let calls = listener.calls - before
            try? moved.delEventfd(offset: 0x10, size: 4, matchData: true, data: 0xfa, notifier: notifier)
            return (t, calls)
        }

        func finish() { space.unregister(listener) }
    }

    /// Milliseconds `body` took.
    static func time(_ body: () -> Void) -> Double {
        let clock = ContinuousClock()
        let d = clock.measure(body)
        return Double(d.components.seconds) * 1e3 + Double(d.components.attoseconds) / 1e15
    }

    static func median(_ xs: [Double]) -> Double {
        let s = xs.sorted()
        return s.count % 2 == 1 ? s[s.count / 2] : (s[s.count / 2 - 1] + s[s.count / 2]) / 2
    }

    private static func same(_ xs: [Int]) -> Int { xs.allSatisfy { $0 == xs.first } ? xs.first ?? 0 : -1 }
}

/// Counts eventfd callbacks and does nothing else (so the memory API's own cost is measured).
final class EventfdCountingListener: MemoryListener, Sendable {
    var handlesEventfds: Bool { true }
    private let count = Atomic<Int>(0)
    var calls: Int { count.load(ordering: .relaxed) }
    func eventfdAdd(_ ioeventfd: MemoryRegionIoeventfd, in addressSpace: AddressSpace) { count.add(1, ordering: .relaxed) }
    func eventfdDel(_ ioeventfd: MemoryRegionIoeventfd, in addressSpace: AddressSpace) { count.add(1, ordering: .relaxed) }
}
