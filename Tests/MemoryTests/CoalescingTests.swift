import Synchronization
import Testing
import VMMSys
@testable import Memory

/// Coalesced I/O on the memory API side: `memory_region_add_coalescing()` reaching listeners
/// as `coalesced_io_add` for every flat range showing the region, the topology pass sending
/// `coalesced_io_del` before `region_del` and `coalesced_io_add` after `region_add`
/// (`flat_range_coalesced_io_del/add()`), `memory_region_clear_coalescing()` draining the
/// buffer first, and dispatch draining it before a flushing region's callbacks
/// (`prepare_mmio_access()`). QEMU 7.2, softmmu/memory.c and physmem.c.
@Suite struct CoalescingTests {
    let system = MemorySystem()

    @Test func addReachesEveryRangeShowingTheRegionForward() {
        let root = MemoryRegion.container(name: "root", size: 0x100000)
        let dev = dummyIO("dev", 0x100)
        root.addSubregion(dev, at: 0x1000)
        // A window on dev's 0x20..<0x60, at 0x8000.
        root.addSubregion(MemoryRegion.alias(name: "win", target: dev, offset: 0x20, size: 0x40), at: 0x8000)
        let space = AddressSpace(root: root, name: "m", system: system)
        let log = CallLog()
        let lo = RecordingListener("lo", priority: 1, log: log), hi = RecordingListener("hi", priority: 2, log: log)
        space.register(hi)
        space.register(lo)
        log.clear()
        #expect(!dev.flushesCoalesced)
        dev.addCoalescing(offset: 0x10, size: 0x20)                     // dev's 0x10..<0x30
        #expect(log.all == [
            "lo.coalesced_add dev 0x1010+0x20", "hi.coalesced_add dev 0x1010+0x20",
            "lo.coalesced_add dev 0x8000+0x10", "hi.coalesced_add dev 0x8000+0x10",
        ])
        #expect(dev.flushesCoalesced)
        #expect(dev.coalescedRanges == [CoalescedMemoryRange(offset: 0x10, size: 0x20)])
        // A range the window does not show reaches only the direct mapping.
        log.clear()
        dev.addCoalescing(offset: 0x80, size: 0x8)
        #expect(log.all == ["lo.coalesced_add dev 0x1080+0x8", "hi.coalesced_add dev 0x1080+0x8"])
        // Clearing drains first, then deletes in Reverse order, range by range.
        let drains = Atomic<Int>(0)
        system.setCoalescedMMIOFlush { drains.add(1, ordering: .relaxed) }
        log.clear()
        dev.clearCoalescing()
        #expect(drains.load(ordering: .relaxed) == 1)
        #expect(log.all == [
            "hi.coalesced_del dev 0x1010+0x20", "lo.coalesced_del dev 0x1010+0x20",
            "hi.coalesced_del dev 0x8000+0x10", "lo.coalesced_del dev 0x8000+0x10",
            "hi.coalesced_del dev 0x1080+0x8", "lo.coalesced_del dev 0x1080+0x8",
        ])
        #expect(!dev.flushesCoalesced && dev.coalescedRanges.isEmpty && lo.coalesced.isEmpty && hi.coalesced.isEmpty)
        dev.clearCoalescing()                                             // nothing to clear: no drain
        #expect(drains.load(ordering: .relaxed) == 1)
    }

    @Test func topologyChangesMoveCoalescedRangesWithTheirRegion() {
        let root = MemoryRegion.container(name: "root", size: 0x100000)
        let dev = dummyIO("dev", 0x100)
        root.addSubregion(dev, at: 0x1000)
        let space = AddressSpace(root: root, name: "m", system: system)
        dev.setCoalescing()                                               // whole region, before any listener
        let l = RecordingListener("L")
        space.register(l)
        // Deliberate difference from QEMU: registration replays coalesced ranges.
        #expect(l.log.all == ["L.begin", "L.add dev@0x1000", "L.coalesced_add dev 0x1000+0x100", "L.commit"])
        l.log.clear()
        dev.setAddress(0x3000)
        #expect(l.log.all == ["L.begin", "L.coalesced_del dev 0x1000+0x100", "L.del dev@0x1000",
                              "L.add dev@0x3000", "L.coalesced_add dev 0x3000+0x100", "L.commit"])
        // Partly covered by a higher-priority region: only the visible parts are coalesced.
        l.log.clear()
        root.addSubregion(dummyIO("over", 0x40), at: 0x3040, priority: 1)
        #expect(l.log.matching("coalesced") == ["L.coalesced_del dev 0x3000+0x100", "L.coalesced_add dev 0x3000+0x40",
                                                "L.coalesced_add dev 0x3080+0x80"])
        #expect(l.coalesced == ["0x3000+0x40", "0x3080+0x80"])
        l.log.clear()
        space.unregister(l)
        #expect(l.log.matching("coalesced").count == 2 && l.coalesced.isEmpty)
    }

    /// A region given coalesced ranges before it joins any memory system (a device built
    /// before the machine maps it) still has them announced when it is mapped.
    @Test func rangesAddedBeforeMappingAreAnnouncedOnMapping() {
        let root = MemoryRegion.container(name: "root", size: 0x100000)
        let space = AddressSpace(root: root, name: "m", system: system)
        let l = RecordingListener("L")
        space.register(l)
        let dev = dummyIO("dev", 0x100)
        dev.addCoalescing(offset: 0, size: 0x40)                          // unbound: nobody to tell
        l.log.clear()
        root.addSubregion(dev, at: 0x2000)
        #expect(l.log.all == ["L.begin", "L.add dev@0x2000", "L.coalesced_add dev 0x2000+0x40", "L.commit"])
        dev.clearCoalescing()
        l.log.clear()
        dev.setAddress(0x3000)                                            // none left: none announced
        #expect(l.log.matching("coalesced").isEmpty)
    }

    /// Dispatch drains the buffer before the callbacks of a flushing region, and only there
    /// (QEMU: `prepare_mmio_access()`).
    @Test func dispatchDrainsBeforeFlushingRegions() {
        let root = MemoryRegion.container(name: "root", size: 0x100000)
        let events = Mutex<[String]>([])
        func ops(_ name: String) -> MemoryRegionOps {
            MemoryRegionOps(read: { o, _ in events.withLock { $0.append("\(name) r \(o)") }; return 0 },
                            write: { o, _, _ in events.withLock { $0.append("\(name) w \(o)") } })
        }
        let coalesced = MemoryRegion.io(name: "c", size: 0x100, ops: ops("c"))
        let status = MemoryRegion.io(name: "s", size: 0x100, ops: ops("s"))
        let plain = MemoryRegion.io(name: "p", size: 0x100, ops: ops("p"))
        root.addSubregion(coalesced, at: 0)
        root.addSubregion(status, at: 0x100)
        root.addSubregion(plain, at: 0x200)
        let space = AddressSpace(root: root, name: "m", system: system)
        system.setCoalescedMMIOFlush { events.withLock { $0.append("drain") } }
        coalesced.addCoalescing(offset: 0, size: 0x100)
        status.setFlushCoalesced()                                        // e.g. a status register
        space.write(0x4, value: 1, size: 4)
        _ = space.read(0x104, size: 4)
        space.write(0x204, value: 1, size: 4)
        #expect(events.withLock { $0 } == ["drain", "c w 4", "drain", "s r 4", "p w 4"])
        status.clearFlushCoalesced()
        coalesced.clearFlushCoalesced()                                   // has ranges: keeps draining
        #expect(!status.flushesCoalesced && coalesced.flushesCoalesced)
        system.setCoalescedMMIOFlush(nil)
        space.write(0x4, value: 1, size: 4)                               // no drain installed: still fine
    }
}
