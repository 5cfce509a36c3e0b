import Foundation
import Synchronization
import Testing
import VMMSys
@testable import Memory

@Suite struct ListenerOrderTests {
    let system = MemorySystem()

    @Test func directionsFollowQEMU() throws {
        let root = MemoryRegion.container(name: "root", size: 0x10000)
        let a = dummyIO("a", 0x100), b = dummyIO("b", 0x100)
        root.addSubregion(a, at: 0)
        let space = AddressSpace(root: root, name: "m", system: system)
        let log = CallLog()
        let l1 = RecordingListener("p1", priority: 1, log: log)
        let l2 = RecordingListener("p2", priority: 2, log: log)
        let l1b = RecordingListener("p1b", priority: 1, log: log)   // equal priority: after p1
        space.register(l2)
        space.register(l1)
        space.register(l1b)
        log.clear()
        system.withTransaction {
            root.removeSubregion(a)
            root.addSubregion(b, at: 0x200)
        }
        #expect(log.all == [
            "p1.begin", "p1b.begin", "p2.begin",
            "p2.del a@0x0", "p1b.del a@0x0", "p1.del a@0x0",
            "p1.add b@0x200", "p1b.add b@0x200", "p2.add b@0x200",
            "p1.commit", "p1b.commit", "p2.commit",
        ])
        log.clear()
        b.setDirtyLogging(true)
        // Attributes unchanged but the log mask grew: QEMU's update pass sends region_nop to
        // every listener, then log_start Forward (address_space_update_topology_pass()).
        #expect(log.all == [
            "p1.begin", "p1b.begin", "p2.begin",
            "p1.nop b@0x200", "p1b.nop b@0x200", "p2.nop b@0x200",
            "p1.log_start b@0x200 0->1", "p1b.log_start b@0x200 0->1", "p2.log_start b@0x200 0->1",
            "p1.commit", "p1b.commit", "p2.commit",
        ])
        log.clear()
        b.setDirtyLogging(true, client: .migration)
        #expect(log.matching("log_") == ["p1.log_start b@0x200 1->5", "p1b.log_start b@0x200 1->5", "p2.log_start b@0x200 1->5"])
        log.clear()
        // The mask shrank: log_stop goes Reverse.
        b.setDirtyLogging(false, client: .vga)
        #expect(log.matching("log_") == ["p2.log_stop b@0x200 5->4", "p1b.log_stop b@0x200 5->4", "p1.log_stop b@0x200 5->4"])
        log.clear()
        // Setting what is already set changes nothing: no commit at all.
        b.setDirtyLogging(true, client: .migration)
        #expect(log.all.isEmpty)
    }

    /// A listener registered after logging began is replayed region add then log_start (from
    /// 0) for each logging range; one unregistered gets log_stop (to 0) then region del. A
    /// range that appears already logging gets only region_add, carrying its mask in the
    /// section (QEMU: listener_add_address_space(), listener_del_address_space(), and the
    /// "In new" branch of address_space_update_topology_pass()).
    @Test func logStartStopReplayAndMirror() throws {
        let root = MemoryRegion.container(name: "root", size: 0x10000)
        let ram = try MemoryRegion.ram(name: "ram", size: 0x1000)
        let dev = dummyIO("dev", 0x100)
        root.addSubregion(ram, at: 0)
        root.addSubregion(dev, at: 0x2000)
        let space = AddressSpace(root: root, name: "m", system: system)
        ram.setDirtyLogging(true)
        let l = RecordingListener("L", eventfds: false)
        space.register(l)
        #expect(l.log.all == ["L.begin", "L.add ram@0x0", "L.log_start ram@0x0 0->1", "L.add dev@0x2000", "L.commit"])
        final class MaskListener: MemoryListener, Sendable {
            let masks = Mutex<[String]>([])
            func regionAdd(_ s: MemoryRegionSection) { masks.withLock { $0.append("\(s.region.name) \(s.dirtyLogMask)") } }
        }
        let m = MaskListener()
        space.register(m)
        #expect(m.masks.withLock { $0 } == ["ram 1", "dev 0"])
        m.masks.withLock { $0.removeAll() }
        l.log.clear()
        ram.setAddress(0x4000)
        #expect(l.log.all == ["L.begin", "L.del ram@0x0", "L.nop dev@0x2000", "L.add ram@0x4000", "L.commit"])
        #expect(m.masks.withLock { $0 } == ["ram 1"])
        space.unregister(m)
        l.log.clear()
        space.unregister(l)
        #expect(l.log.all == ["L.begin", "L.del dev@0x2000", "L.log_stop ram@0x4000 1->0", "L.del ram@0x4000", "L.commit"])
        #expect(l.sectionCount == 0)
    }

    @Test func nestedTransactionsCommitOnce() {
        let root = MemoryRegion.container(name: "root", size: 0x10000)
        let a = dummyIO("a", 0x100)
        root.addSubregion(a, at: 0)
        let space = AddressSpace(root: root, name: "m", system: system)
        let l = RecordingListener("L", eventfds: false)
        space.register(l)
        l.log.clear()
        system.withTransaction {
            a.setAddress(0x100)
            system.withTransaction { a.setAddress(0x200) }
            #expect(l.log.all.isEmpty)   // nothing until the outermost commit
            a.setAddress(0x300)
        }
        #expect(l.log.all == ["L.begin", "L.del a@0x0", "L.add a@0x300", "L.commit"])
    }

    /// A reader on another thread, racing 2000 moves, only ever sees a complete view: one
    /// range of the RAM, at one of its two places, through which the RAM's word reads back.
    /// The reader is joined (polled against a generous deadline) and every distinct
    /// observation it made is checked.
    @Test func viewSwapIsAtomicForReaders() throws {
        let root = MemoryRegion.container(name: "root", size: 0x10000)
        let ram = try MemoryRegion.ram(name: "ram", size: 0x1000)
        root.addSubregion(ram, at: 0)
        let space = AddressSpace(root: root, name: "m", system: system)
        try space.guestMemory.store(UInt32(0x1234_5678), at: 0)

        struct Seen: Hashable { var ranges: Int; var start: UInt64; var size: UInt128; var value: UInt64; var ok: Bool }
        let stop = Atomic<Bool>(false), started = Atomic<Bool>(false), finished = Atomic<Bool>(false)
        let seen = Mutex<[Seen: Int]>([:])
        try HostThread.start(name: "view-reader") {
            var local: [Seen: Int] = [:]
            repeat {
                let v = space.currentMap
                let first = v.ranges.first
                let (value, result) = first.map { space.read($0.start, size: 4, in: v) } ?? (0, .decodeError)
                local[Seen(ranges: v.ranges.count, start: first?.start ?? .max, size: first?.size ?? 0,
                           value: value, ok: result == .ok), default: 0] += 1
                started.store(true, ordering: .releasing)
            } while !stop.load(ordering: .acquiring)
            seen.withLock { $0 = local }
            finished.store(true, ordering: .releasing)
        }
        let clock = ContinuousClock()
        let deadline = clock.now + .seconds(60)
        while !started.load(ordering: .acquiring), clock.now < deadline { Thread.sleep(forTimeInterval: 0.001) }
        for i in 0..<2000 { ram.setAddress(UInt64(i % 2) * 0x1000) }
        stop.store(true, ordering: .releasing)
        while !finished.load(ordering: .acquiring), clock.now < deadline { Thread.sleep(forTimeInterval: 0.001) }
        let joined = finished.load(ordering: .acquiring)
        #expect(joined, "the reader thread did not finish")

        let observations = seen.withLock { $0 }
        #expect(observations.values.reduce(0, +) > 0)
        for (o, count) in observations {
            #expect(o.ranges == 1 && (o.start == 0 || o.start == 0x1000) && o.size == 0x1000
                    && o.value == 0x1234_5678 && o.ok, "reader saw \(o) \(count) times")
        }
    }
}
