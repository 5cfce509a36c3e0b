import Synchronization
import Testing
import VMMSys
@testable import Memory

/// Dirty logging through the memory API, as an accelerator will use it: log_start/log_stop
/// with the masks, log_sync pulling a bitmap into the region (`setDirty(bitmap:…)`, QEMU:
/// `cpu_physical_memory_set_dirty_lebitmap()`), per-client bits read and cleared with
/// log_clear narrowed to the cleared pages (QEMU: `memory_region_get_dirty()`,
/// `memory_region_snapshot_and_clear_dirty()`, `memory_region_reset_dirty()`,
/// `memory_region_clear_dirty_bitmap()`), and global dirty logging for migration
/// (`memory_global_dirty_log_start/stop()`).
@Suite struct DirtyLogTests {
    let system = MemorySystem()

    /// RAM of 16 pages at 0x10000 in a space, shown a second time through an alias at 0x40000
    /// (pages 8..<12 only).
    func setUp() throws -> (AddressSpace, MemoryRegion) {
        let root = MemoryRegion.container(name: "root", size: UInt128(1) << 64)
        let ram = try MemoryRegion.ram(name: "ram", size: 16 * 0x1000)
        root.addSubregion(ram, at: 0x10000)
        root.addSubregion(MemoryRegion.alias(name: "win", target: ram, offset: 0x8000, size: 0x4000), at: 0x40000)
        root.addSubregion(dummyIO("dev", 0x100), at: 0x80000)
        return (AddressSpace(root: root, name: "m", system: system), ram)
    }

    @Test func writesThroughDispatchMarkOnlyLoggingClients() throws {
        let (space, ram) = try setUp()
        space.write(0x10000, value: 1, size: 4)
        #expect(!ram.isDirty(offset: 0, size: 0x10000, client: .vga))     // not logging: nothing
        ram.setDirtyLogging(true, client: .vga)
        #expect(ram.isLogging(.vga) && !ram.isLogging(.migration) && ram.dirtyLogMask == 1)
        space.write(0x12ffe, value: 0xffff_ffff, size: 4)              // straddles pages 2 and 3
        space.write(0x40000, value: 7, size: 1)                        // page 8, through the alias
        for page in UInt64(0)..<16 {
            #expect(ram.isDirty(offset: page * 0x1000, size: 1, client: .vga) == [2, 3, 8].contains(page), "page \(page)")
        }
        #expect(!ram.isDirty(offset: 0, size: 0x10000, client: .migration))
        // The write's data landed too.
        #expect(try space.guestMemory.load(UInt8.self, at: 0x18000) == 7)
    }

    /// snapshot_and_clear syncs first (log_sync for exactly the ranges showing this region,
    /// listener by listener), takes the bits of the pages the range touches and clears them,
    /// telling the listener (log_clear) which part of each range was cleared.
    @Test func snapshotSyncsTakesAndClears() throws {
        let (space, ram) = try setUp()
        ram.setDirtyLogging(true, client: .vga)
        // The "accelerator" reports pages 1 and 9 of its slot for the main mapping.
        let l = RecordingListener("L", eventfds: false, onLogSync: { s in
            if s.offsetWithinAddressSpace == 0x10000 { s.region.setDirty(bitmap: [0b10_0000_0010], offset: 0, pages: 16) }
        })
        space.register(l)
        l.log.clear()
        let snap = ram.snapshotAndClearDirty(offset: 0, size: 0x10000, client: .vga)
        #expect(l.log.all == [
            "L.log_sync ram@0x10000", "L.log_sync ram@0x40000",
            "L.log_clear ram@0x10000+0x10000 @0x0", "L.log_clear ram@0x40000+0x4000 @0x8000",
        ])
        #expect(snap.start == 0 && snap.pages == 16)
        #expect(snap.dirtyOffsets == [0x1000, 0x9000])
        #expect(snap.isDirty(offset: 0x1fff, size: 1) && !snap.isDirty(offset: 0x2000, size: 0x7000))
        #expect(snap.isDirty(offset: 0x8000, size: 0x2000))
        // Cleared: nothing left until the next write or sync.
        #expect(!ram.isDirty(offset: 0, size: 0x10000, client: .vga))
        space.write(0x1f000, value: 1, size: 1)                        // page 15
        l.log.clear()
        let again = ram.snapshotAndClearDirty(offset: 0xe000, size: 0x1001, client: .vga)
        #expect(again.start == 0xe000 && again.pages == 2 && again.dirtyOffsets == [0xf000])
        // Only the main mapping intersects pages 14-15; the alias shows pages 8-11.
        #expect(l.log.matching("log_clear") == ["L.log_clear ram@0x1e000+0x2000 @0xe000"])
    }

    /// The sync bitmap marks the VGA client always and migration only while global dirty
    /// logging is on (the code client belongs to TCG), as QEMU 7.2 does.
    @Test func syncBitmapClientsFollowQEMU() throws {
        let (_, ram) = try setUp()
        ram.setDirty(bitmap: [0b1], offset: 0, pages: 16)
        #expect(ram.isDirty(offset: 0, size: 1, client: .vga))
        #expect(!ram.isDirty(offset: 0, size: 1, client: .migration) && !ram.isDirty(offset: 0, size: 1, client: .code))
        system.startGlobalDirtyLog()
        ram.setDirty(bitmap: [0b100], offset: 0, pages: 16)
        #expect(ram.isDirty(offset: 0x2000, size: 1, client: .migration))
        // Bits beyond `pages` or the block, and a misaligned offset, are ignored.
        ram.setDirty(bitmap: [.max, .max], offset: 0xf000, pages: 100)
        #expect(ram.isDirty(offset: 0xf000, size: 1, client: .vga))
        ram.setDirty(bitmap: [.max], offset: 0x10, pages: 64)
        #expect(!ram.isDirty(offset: 0x4000, size: 0x1000, client: .vga))
    }

    @Test func resetDirtyClearsOneClientAndReportsWhetherAnyWasDirty() throws {
        let (space, ram) = try setUp()
        let l = RecordingListener("L", eventfds: false)
        space.register(l)
        ram.setDirtyLogging(true, client: .vga)
        ram.setDirtyLogging(true, client: .migration)
        ram.setDirty(offset: 0x3000, size: 0x1800)                     // pages 3, 4
        #expect(ram.isDirty(offset: 0x4000, size: 1, client: .migration))
        l.log.clear()
        #expect(ram.resetDirty(offset: 0x3000, size: 0x1000, client: .vga))
        #expect(!ram.resetDirty(offset: 0x3000, size: 0x1000, client: .vga))
        #expect(l.log.matching("log_clear") == ["L.log_clear ram@0x13000+0x1000 @0x3000", "L.log_clear ram@0x13000+0x1000 @0x3000"])
        #expect(ram.isDirty(offset: 0x4000, size: 1, client: .vga))
        #expect(ram.isDirty(offset: 0x3000, size: 1, client: .migration))
    }

    /// Offsets and sizes at the edges — past the block, wrapping, zero — never trap and touch
    /// only pages inside the block.
    @Test func hostileRangesNeverTrap() throws {
        let (_, ram) = try setUp()
        ram.setDirtyLogging(true)
        for (offset, size) in [(UInt64.max, UInt64.max), (0xffff, UInt64.max), (0x10000, 1), (0, 0), (UInt64.max - 1, 2)] {
            ram.setDirty(offset: offset, size: size)
            _ = ram.isDirty(offset: offset, size: size, client: .vga)
            _ = ram.resetDirty(offset: offset, size: size, client: .vga)
            let snap = ram.snapshotAndClearDirty(offset: offset, size: size, client: .vga)
            #expect(!snap.isDirty(offset: offset, size: size) || offset < 0x10000)
            _ = snap.isDirty(offset: UInt64.max, size: UInt64.max)
        }
        ram.setDirty(offset: 0xffff, size: UInt64.max)                  // from the last page to "the end"
        #expect(ram.isDirty(offset: 0xf000, size: 1, client: .vga) && !ram.isDirty(offset: 0, size: 0xf000, client: .vga))
        // Regions without RAM have no bitmap.
        let dev = dummyIO("d", 0x1000)
        dev.setDirty(offset: 0, size: 0x1000)
        #expect(!dev.isDirty(offset: 0, size: 0x1000, client: .vga))
        #expect(dev.snapshotAndClearDirty(offset: 0, size: 0x1000, client: .vga).pages == 0)
    }

    /// Global dirty logging: log_global_start, then one commit in which every RAM range (not
    /// I/O) gets log_start with the migration bit; stopping is the mirror, log_global_stop
    /// last. A listener registering meanwhile is replayed log_global_start first.
    @Test func globalDirtyLogStartsAndStopsRAMRanges() throws {
        let (space, ram) = try setUp()
        let l = RecordingListener("L", eventfds: false)
        space.register(l)
        l.log.clear()
        system.startGlobalDirtyLog()
        #expect(system.isGlobalDirtyLogging && ram.isLogging(.migration))
        #expect(l.log.all == [
            "L.log_global_start", "L.begin",
            "L.nop ram@0x10000", "L.log_start ram@0x10000 0->4",
            "L.nop ram@0x40000", "L.log_start ram@0x40000 0->4",
            "L.nop dev@0x80000",
            "L.commit",
        ])
        let late = RecordingListener("late", eventfds: false)
        space.register(late)
        #expect(late.log.all.prefix(2) == ["late.begin", "late.log_global_start"])
        #expect(late.log.matching("log_start") == ["late.log_start ram@0x10000 0->4", "late.log_start ram@0x40000 0->4"])
        l.log.clear()
        system.stopGlobalDirtyLog()
        #expect(l.log.all == [
            "L.begin",
            "L.nop ram@0x10000", "L.log_stop ram@0x10000 4->0",
            "L.nop ram@0x40000", "L.log_stop ram@0x40000 4->0",
            "L.nop dev@0x80000",
            "L.commit", "L.log_global_stop",
        ])
        #expect(!ram.isLogging(.migration))
    }

    /// A sync of everything: every logging range of every address space, listener by listener.
    @Test func globalSyncVisitsEveryLoggingRange() throws {
        let (space, ram) = try setUp()
        let log = CallLog()
        let a = RecordingListener("a", priority: 1, eventfds: false, log: log)
        let b = RecordingListener("b", priority: 2, eventfds: false, log: log)
        space.register(b)
        space.register(a)
        log.clear()
        system.syncDirtyLog()
        #expect(log.all.isEmpty)                                        // nothing logs yet
        ram.setDirtyLogging(true)
        log.clear()
        system.syncDirtyLog()
        #expect(log.all == ["a.log_sync ram@0x10000", "a.log_sync ram@0x40000", "b.log_sync ram@0x10000", "b.log_sync ram@0x40000"])
    }
}
