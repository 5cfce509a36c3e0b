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
public enum MemoryBenchmark {
    /// One size's figures. Times are medians over the repetitions, in milliseconds.
    public struct Case: Sendable, Equatable {
        public var regions: Int
        public var buildMs: Double
        public var moveOneMs: Double
        public var addOneMs: Double
        /// Eventfd listener calls one move made (the same on every repetition, or -1).
        public var moveCalls: Int
        /// Eventfd listener calls one added ioeventfd made (the same on every repetition, or -1).
        public var addOneCalls: Int
    }

    /// The sizes `vmm bench memory` measures.
    public static let defaultSizes = [1_000, 10_000, 100_000]

    /// The largest size accepted (regions sit 4 KiB apart below 2^44).
    public static let maximumRegions = 1 << 24

    /// Builds the space for `regions` regions and measures each operation `repetitions` times
    /// (the build once). Needs one file descriptor (all ioeventfds share one eventfd).
    /// - Throws: the eventfd's creation failure.
    public static func run(regions n: Int, repetitions: Int = 5) throws(SystemError) -> Case {
        let n = min(max(n, 1), maximumRegions)
        let repetitions = max(repetitions, 1)
        let system = MemorySystem()
        let root = MemoryRegion.container(name: "bench", size: UInt128(1) << 64)
        let space = AddressSpace(root: root, name: "bench", system: system)
        let listener = EventfdCountingListener()
        space.register(listener)
        let notifier = try EventNotifier()
        let ops = MemoryRegionOps(read: { _, _ in 0 }, write: { _, _, _ in })
        let stride: UInt64 = 0x1000

        var regions: [MemoryRegion] = []
        regions.reserveCapacity(n)
        let build = time {
            system.withTransaction {
                for i in 0..<n {
                    let r = MemoryRegion.io(name: "dev", size: 0x100, ops: ops)
                    root.addSubregion(r, at: UInt64(i) * stride)
                    try? r.addEventfd(offset: 0, size: 4, matchData: true, data: UInt64(i), notifier: notifier)
                    regions.append(r)
                }
            }
        }

        let moved = regions[n / 2]
        let home = UInt64(n / 2) * stride, away = UInt64(n + 1) * stride
        var moveTimes: [Double] = [], moveCalls: [Int] = []
        for k in 0..<repetitions {
            let before = listener.calls
            moveTimes.append(time { system.withTransaction { moved.setAddress(k % 2 == 0 ? away : home) } })
            moveCalls.append(listener.calls - before)
        }

        var addTimes: [Double] = [], addCalls: [Int] = []
        for _ in 0..<repetitions {
            let before = listener.calls
            addTimes.append(time {
                try? moved.addEventfd(offset: 0x10, size: 4, matchData: true, data: 0xfa, notifier: notifier)
            })
            addCalls.append(listener.calls - before)
            try? moved.delEventfd(offset: 0x10, size: 4, matchData: true, data: 0xfa, notifier: notifier)
        }
        space.unregister(listener)

        return Case(regions: n, buildMs: build, moveOneMs: median(moveTimes), addOneMs: median(addTimes),
                    moveCalls: same(moveCalls), addOneCalls: same(addCalls))
    }

    /// Milliseconds `body` took.
    private static func time(_ body: () -> Void) -> Double {
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
