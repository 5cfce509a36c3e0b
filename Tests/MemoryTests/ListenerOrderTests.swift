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
        // Attributes changed (log mask): QEMU reports it as a nop plus log_start (Forward).
        #expect(log.all.contains("p1.nop b@0x200"))
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

    @Test func viewSwapIsAtomicForReaders() throws {
        // Readers on another thread always see a complete view: one range, either placement.
        let root = MemoryRegion.container(name: "root", size: 0x10000)
        let ram = try MemoryRegion.ram(name: "ram", size: 0x1000)
        root.addSubregion(ram, at: 0)
        let space = AddressSpace(root: root, name: "m", system: system)
        try space.guestMemory.store(UInt32(0x1234_5678), at: 0)
        let done = Mutex(false)
        let bad = Mutex(0)
        let finished = DispatchSemaphore(value: 0)
        let reader = Thread {
            while !done.withLock({ $0 }) {
                let v = space.currentMap
                if v.ranges.count != 1 { bad.withLock { $0 += 1 } }
                let r = v.ranges[0]
                let (val, _) = space.read(r.start, size: 4)
                _ = val
            }
            finished.signal()
        }
        reader.start()
        for i in 0..<2000 { ram.setAddress(UInt64(i % 2) * 0x1000) }
        done.withLock { $0 = true }
        // The reader's last snapshot is checked before it signals; wait for that (a hang
        // guard, not a timing assumption).
        #expect(finished.wait(timeout: .now() + 60) == .success)
        #expect(bad.withLock { $0 } == 0)
    }
}
