import TestSupport
import Testing
import VMMSys
@testable import Memory

@Suite struct IoeventfdTests {
    let system = MemorySystem()
    let root = MemoryRegion.container(name: "root", size: 0x10000)

    func fd(_ start: UInt64, _ size: UInt64, _ match: Bool, _ data: UInt64, _ n: EventNotifier) -> MemoryRegionIoeventfd {
        MemoryRegionIoeventfd(start: start, size: size, matchData: match, data: data, notifier: n)
    }

    @Test func orderingPredicate() throws {
        let a = try EventNotifier(), b = try EventNotifier()
        let (lo, hi) = ObjectIdentifier(a) < ObjectIdentifier(b) ? (a, b) : (b, a)
        #expect(fd(0x10, 4, false, 0, a).isOrderedBefore(fd(0x11, 1, false, 0, a)))   // start first
        #expect(fd(0x10, 2, true, 9, a).isOrderedBefore(fd(0x10, 4, false, 0, a)))    // then size
        #expect(fd(0x10, 4, false, 7, a).isOrderedBefore(fd(0x10, 4, true, 0, a)))    // unmatched first
        #expect(fd(0x10, 4, true, 1, hi).isOrderedBefore(fd(0x10, 4, true, 2, lo)))   // data when matched
        #expect(fd(0x10, 4, false, 9, lo).isOrderedBefore(fd(0x10, 4, false, 1, hi))) // data ignored unmatched
        #expect(!fd(0x10, 4, false, 9, lo).isOrderedBefore(fd(0x10, 4, false, 1, lo)))
        #expect(!fd(0x10, 4, false, 1, lo).isOrderedBefore(fd(0x10, 4, false, 9, lo)))
    }

    @Test func equalityPredicateWildcards() throws {
        let a = try EventNotifier(), b = try EventNotifier()
        #expect(fd(0x10, 0, false, 0, a).matches(fd(0x10, 4, true, 5, b)))    // size 0 on the left
        #expect(fd(0x10, 2, true, 5, b).matches(fd(0x10, 0, false, 0, a)))    // size 0 on the right
        #expect(!fd(0x11, 0, false, 0, a).matches(fd(0x10, 0, false, 0, a)))  // start always counts
        #expect(!fd(0x10, 2, true, 5, a).matches(fd(0x10, 4, true, 5, a)))
        #expect(!fd(0x10, 4, true, 5, a).matches(fd(0x10, 4, true, 6, a)))
        #expect(fd(0x10, 4, false, 5, a).matches(fd(0x10, 4, false, 6, a)))   // data ignored unmatched
        #expect(!fd(0x10, 4, false, 5, a).matches(fd(0x10, 4, false, 5, b)))  // notifier counts
        #expect(!fd(0x10, 4, true, 5, a).matches(fd(0x10, 4, false, 5, a)))
    }

    @Test func delForwardAddReverseAcrossTwoListeners() throws {
        let dev = dummyIO("dev", 0x100)
        root.addSubregion(dev, at: 0x1000)
        let space = AddressSpace(root: root, name: "io", system: system)
        let log = CallLog()
        let low = RecordingListener("low", priority: 1, log: log)
        let high = RecordingListener("high", priority: 10, log: log)
        space.register(high)
        space.register(low)
        log.clear()
        let n = try EventNotifier()
        try dev.addEventfd(offset: 4, size: 4, matchData: false, data: 0, notifier: n)
        #expect(log.all == ["high.eventfd_add 0x1004/4", "low.eventfd_add 0x1004/4"])
        log.clear()
        try dev.delEventfd(offset: 4, size: 4, matchData: false, data: 0, notifier: n)
        #expect(log.all == ["low.eventfd_del 0x1004/4", "high.eventfd_del 0x1004/4"])
    }

    @Test func ioeventfdOnlyChangeHasNoBeginCommit() throws {
        let dev = dummyIO("dev", 0x100)
        root.addSubregion(dev, at: 0x1000)
        let space = AddressSpace(root: root, name: "io", system: system)
        let l = RecordingListener("L")
        space.register(l)
        l.log.clear()
        try dev.addEventfd(offset: 0, size: 1, matchData: true, data: 0xfa, notifier: try EventNotifier())
        #expect(l.log.all == ["L.eventfd_add 0x1000/1"])
    }

    @Test func moveInTransactionIsOneDelOneAdd() throws {
        let dev = dummyIO("dev", 0x100)
        root.addSubregion(dev, at: 0x1000)
        let space = AddressSpace(root: root, name: "io", system: system)
        let l = RecordingListener("L")
        space.register(l)
        try dev.addEventfd(offset: 8, size: 2, matchData: false, data: 0, notifier: try EventNotifier())
        l.log.clear()
        system.withTransaction {
            dev.setAddress(0x2000)
            dev.setAddress(0x3000)
        }
        #expect(l.log.matching("eventfd") == ["L.eventfd_del 0x1008/2", "L.eventfd_add 0x3008/2"])
        #expect(l.log.all.first == "L.begin" && l.log.all.last == "L.commit")
        #expect(space.ioeventfds.map(\.start) == [0x3008])
    }

    @Test func disabledRegionIoeventfdsWaitForEnable() throws {
        let dev = dummyIO("dev", 0x100)
        root.addSubregion(dev, at: 0x1000)
        dev.setEnabled(false)
        let space = AddressSpace(root: root, name: "io", system: system)
        let l = RecordingListener("L")
        space.register(l)
        l.log.clear()
        try dev.addEventfd(offset: 0, size: 4, matchData: false, data: 0, notifier: try EventNotifier())
        #expect(l.log.all.isEmpty)
        #expect(space.ioeventfds.isEmpty)
        dev.setEnabled(true)
        #expect(l.log.matching("eventfd") == ["L.eventfd_add 0x1000/4"])
        dev.setEnabled(false)
        #expect(l.log.matching("eventfd") == ["L.eventfd_add 0x1000/4", "L.eventfd_del 0x1000/4"])
    }

    @Test func duplicatesAreKeptAndDeletedOneAtATime() throws {
        let dev = dummyIO("dev", 0x100)
        root.addSubregion(dev, at: 0)
        let space = AddressSpace(root: root, name: "io", system: system)
        let l = RecordingListener("L")
        space.register(l)
        let n = try EventNotifier()
        try dev.addEventfd(offset: 0, size: 4, matchData: false, data: 0, notifier: n)
        try dev.addEventfd(offset: 0, size: 4, matchData: false, data: 0, notifier: n)
        #expect(space.ioeventfds.count == 2)
        #expect(l.eventfds.count == 2)
        try dev.delEventfd(offset: 0, size: 4, matchData: false, data: 0, notifier: n)
        #expect(space.ioeventfds.count == 1)
        #expect(l.eventfds.count == 1)
        try dev.delEventfd(offset: 0, size: 4, matchData: false, data: 0, notifier: n)
        #expect(l.eventfds.isEmpty)
        #expect(throws: MemoryError.self) {
            try dev.delEventfd(offset: 0, size: 4, matchData: false, data: 0, notifier: n)
        }
    }

    @Test func invalidIoeventfdsAreRejected() throws {
        let dev = dummyIO("dev", 0x100)
        let n = try EventNotifier()
        #expect(throws: MemoryError.self) { try dev.addEventfd(offset: 0, size: 3, matchData: false, data: 0, notifier: n) }
        #expect(throws: MemoryError.self) { try dev.addEventfd(offset: 0, size: 0, matchData: true, data: 1, notifier: n) }
    }

    @Test func wildcardDeleteRemovesSizedEntry() throws {
        let dev = dummyIO("dev", 0x100)
        let n = try EventNotifier()
        try dev.addEventfd(offset: 0x10, size: 4, matchData: true, data: 7, notifier: n)
        try dev.delEventfd(offset: 0x10, size: 0, matchData: false, data: 0, notifier: n)
        #expect(dev.ioeventfds.isEmpty)
    }

    @Test func bigEndianDeviceStoresDataInDeviceOrder() throws {
        let ops = MemoryRegionOps(read: { _, _ in 0 }, write: { _, _, _ in }, endianness: .big)
        let dev = MemoryRegion.io(name: "be", size: 0x10, ops: ops)
        try dev.addEventfd(offset: 0, size: 2, matchData: true, data: 0x1234, notifier: try EventNotifier())
        #expect(dev.ioeventfds.first?.data == 0x3412)
    }

    @Test func registerReplaysAndUnregisterMirrors() throws {
        let dev = dummyIO("dev", 0x100)
        root.addSubregion(dev, at: 0x1000)
        let ram = try MemoryRegion.ram(name: "ram", size: 0x1000)
        root.addSubregion(ram, at: 0)
        let space = AddressSpace(root: root, name: "io", system: system)
        // No eventfd listener yet: QEMU would keep a stale (empty) array and replay that.
        try dev.addEventfd(offset: 2, size: 1, matchData: true, data: 1, notifier: try EventNotifier())
        let l = RecordingListener("L")
        space.register(l)
        #expect(l.log.all == ["L.begin", "L.add ram@0x0", "L.add dev@0x1000", "L.eventfd_add 0x1002/1", "L.commit"])
        l.log.clear()
        space.unregister(l)
        #expect(l.log.all == ["L.begin", "L.del ram@0x0", "L.del dev@0x1000", "L.eventfd_del 0x1002/1", "L.commit"])
        // Unregistered: no more calls.
        try dev.addEventfd(offset: 3, size: 1, matchData: false, data: 0, notifier: try EventNotifier())
        #expect(l.log.all.count == 5)
    }

    @Test func collectedSetIsTranslatedNotClipped() throws {
        // Region at 0x1000 shown through an alias that starts 0x10 into it: an ioeventfd at
        // offset 0x8 (before the window) is not included; one straddling the start is.
        let dev = dummyIO("dev", 0x100)
        let n = try EventNotifier()
        try dev.addEventfd(offset: 0x8, size: 4, matchData: false, data: 0, notifier: n)
        try dev.addEventfd(offset: 0xe, size: 4, matchData: false, data: 0, notifier: n)
        try dev.addEventfd(offset: 0x20, size: 0, matchData: false, data: 0, notifier: n)
        let alias = MemoryRegion.alias(name: "win", target: dev, offset: 0x10, size: 0x40)
        root.addSubregion(alias, at: 0x2000)
        let space = AddressSpace(root: root, name: "io", system: system)
        space.register(RecordingListener("L"))
        #expect(space.ioeventfds.map { "\(hx($0.start))/\($0.size)" } == ["0x1ffe/4", "0x2010/0"])
    }

    /// After random changes, the calls listeners received equal the set difference between
    /// the old and new ioeventfd sets — one call per changed entry — and listeners' views
    /// equal the truth.
    @Test func randomDiffsEqualSetDifference() throws {
        let seed = UInt64.random(in: 0...UInt64.max >> 8)
        var g = SeededGenerator(seed: seed)
        let notifiers = try (0..<3).map { _ in try EventNotifier() }
        let devs = (0..<4).map { dummyIO("d\($0)", 0x40) }
        for (i, d) in devs.enumerated() { root.addSubregion(d, at: UInt64(i) * 0x40, priority: Int32(i % 2)) }
        let space = AddressSpace(root: root, name: "io", system: system)
        let l = RecordingListener("L")
        space.register(l)
        for step in 0..<400 {
            let before = space.ioeventfds
            l.log.clear()
            system.withTransaction {
                for _ in 0..<(g.next() % 3 + 1) {
                    let d = devs[Int(g.next() % 4)]
                    switch g.next() % 6 {
                    case 0, 1, 2:
                        let size = [0, 1, 2, 4, 8][Int(g.next() % 5)]
                        let match = size != 0 && g.next() % 2 == 0
                        try? d.addEventfd(offset: g.next() % 0x40, size: size, matchData: match, data: g.next() % 3,
                                          notifier: notifiers[Int(g.next() % 3)])
                    case 3:
                        if let f = d.ioeventfds.randomElement(using: &g) {
                            try? d.delEventfd(offset: f.start, size: Int(f.size), matchData: f.matchData, data: f.data, notifier: f.notifier)
                        }
                    case 4: d.setAddress((g.next() % 8) * 0x20)
                    default: d.setEnabled(!d.isEnabled)
                    }
                }
            }
            let after = space.ioeventfds
            let removed = multisetMinus(before, after), added = multisetMinus(after, before)
            #expect(l.log.matching("eventfd_del").count == removed, "seed \(seed) step \(step)")
            #expect(l.log.matching("eventfd_add").count == added, "seed \(seed) step \(step)")
            #expect(sameMultiset(l.eventfds, after), "seed \(seed) step \(step): listener's set differs")
            #expect(sameMultiset(after, space.collectIoeventfds()), "seed \(seed) step \(step)")
        }
    }

    /// The same property at scale, where commits take the incremental path (few changed
    /// ranges) or the full one (a step toggling a hundred devices): 400 devices, 40 aliases
    /// showing some of them a second time, 40 four-byte holes splitting them, ioeventfds
    /// straddling range edges. After every
    /// step the calls equal the set difference, the listener's set equals the truth, and the
    /// maintained list equals a fresh collection.
    @Test func randomDiffsAtScaleBothPaths() throws {
        let seed = UInt64.random(in: 0...UInt64.max >> 8)
        var g = SeededGenerator(seed: seed)
        let notifiers = try (0..<3).map { _ in try EventNotifier() }
        let root = MemoryRegion.container(name: "big", size: UInt128(1) << 64)
        let devs = (0..<400).map { dummyIO("d\($0)", 0x40) }
        var shown: [MemoryRegion] = devs
        system.withTransaction {
            for (i, d) in devs.enumerated() { root.addSubregion(d, at: UInt64(i) * 0x40, priority: Int32(i % 3)) }
            for k in 0..<40 {
                let a = MemoryRegion.alias(name: "a\(k)", target: devs[Int(g.next() % 400)], offset: g.next() % 0x20, size: 0x30)
                root.addSubregion(a, at: 0x100000 + UInt64(k) * 0x30, priority: 1)
                shown.append(a)
            }
            // Small high-priority regions splitting devices into ranges a few bytes apart, so
            // an ioeventfd of one piece can start inside the other's reach.
            for k in 0..<40 {
                let hole = dummyIO("h\(k)", 4)
                root.addSubregion(hole, at: (g.next() % 0x4000) * 4, priority: 5)
                shown.append(hole)
            }
        }
        let space = AddressSpace(root: root, name: "io", system: system)
        let l = RecordingListener("L")
        space.register(l)
        for step in 0..<300 {
            let before = space.ioeventfds
            l.log.clear()
            system.withTransaction {
                let ops = step % 50 == 49 ? 100 : Int(g.next() % 5 + 1)
                for _ in 0..<ops {
                    let d = devs[Int(g.next() % UInt64(devs.count))]
                    switch g.next() % 9 {
                    case 0, 1, 2:
                        let size = [0, 1, 2, 4, 8][Int(g.next() % 5)]
                        let match = size != 0 && g.next() % 2 == 0
                        try? d.addEventfd(offset: g.next() % 0x44, size: size, matchData: match, data: g.next() % 3,
                                          notifier: notifiers[Int(g.next() % 3)])
                    case 3, 4:
                        if let f = d.ioeventfds.randomElement(using: &g) {
                            try? d.delEventfd(offset: f.start, size: Int(f.size), matchData: f.matchData, data: f.data, notifier: f.notifier)
                        }
                    case 5: d.setAddress((g.next() % 0x800) * 0x20)
                    case 6: shown[Int(g.next() % UInt64(shown.count))].setEnabled(g.next() % 3 != 0)
                    case 7: shown[400 + Int(g.next() % 40)].setAddress(0x100000 + (g.next() % 0x100) * 0x10)
                    default: shown[440 + Int(g.next() % 40)].setAddress((g.next() % 0x4000) * 4)
                    }
                }
            }
            let after = space.ioeventfds
            let removed = multisetMinus(before, after), added = multisetMinus(after, before)
            #expect(l.log.matching("eventfd_del").count == removed, "seed \(seed) step \(step)")
            #expect(l.log.matching("eventfd_add").count == added, "seed \(seed) step \(step)")
            let listenerAgrees = sameMultiset(l.eventfds, after)
            let listMatchesTruth = sameMultiset(after, space.collectIoeventfds())
            let sorted = zip(after, after.dropFirst()).allSatisfy { !$1.isOrderedBefore($0) }
            #expect(listenerAgrees, "seed \(seed) step \(step): listener's set differs")
            #expect(listMatchesTruth, "seed \(seed) step \(step): maintained list differs from a fresh collection")
            #expect(sorted, "seed \(seed) step \(step): unsorted")
            if !(listenerAgrees && listMatchesTruth && sorted) { return }
        }
    }

    func multisetMinus(_ a: [MemoryRegionIoeventfd], _ b: [MemoryRegionIoeventfd]) -> Int {
        var rest = b
        var count = 0
        for x in a {
            if let i = rest.firstIndex(where: { $0.isSameEntry(x) }) { rest.remove(at: i) } else { count += 1 }
        }
        return count
    }

    func sameMultiset(_ a: [MemoryRegionIoeventfd], _ b: [MemoryRegionIoeventfd]) -> Bool {
        a.count == b.count && multisetMinus(a, b) == 0
    }
}
