import Testing
import VMMSys
@testable import Memory

/// What `vmm bench memory` measures, checked by its counts (times are never asserted): moving
/// one region among n costs one eventfd delete and one add, adding one ioeventfd one add,
/// whatever n is.
@Suite struct MemoryBenchmarkTests {
    @Test(arguments: [1, 1_000, 10_000])
    func countsDoNotGrowWithTheRegions(regions: Int) throws {
        let c = try MemoryBenchmark.run(regions: regions, repetitions: 3)
        #expect(c.regions == regions)
        #expect(c.moveCalls == 2)
        #expect(c.addOneCalls == 1)
        #expect(c.buildMs >= 0 && c.moveOneMs >= 0 && c.addOneMs >= 0)
    }

    @Test func medianOfOddAndEvenCounts() {
        #expect(MemoryBenchmark.median([3, 1, 2]) == 2)
        #expect(MemoryBenchmark.median([4, 1, 3, 2]) == 2.5)
    }
}

/// The recording listener the other suites rely on must itself fail on callbacks no correct
/// memory API sends, or their "listener belief equals truth" checks could not fail.
@Suite struct RecordingListenerSelfTests {
    let system = MemorySystem()

    @Test func failsOnImpossibleCallbacks() throws {
        let root = MemoryRegion.container(name: "root", size: 0x10000)
        root.addSubregion(dummyIO("a", 0x100), at: 0)
        root.addSubregion(dummyIO("b", 0x100), at: 0x1000)
        let space = AddressSpace(root: root, name: "m", system: system)
        let l = RecordingListener("L")
        space.register(l)
        let a = MemoryRegionSection(space.currentMap.ranges[0], in: space)
        let b = MemoryRegionSection(space.currentMap.ranges[1], in: space)
        withKnownIssue("a duplicate add") { l.regionAdd(a) }
        space.unregister(l)
        let fresh = RecordingListener("F")
        withKnownIssue("a delete of a range never added") { fresh.regionDel(b) }
        fresh.regionAdd(a)
        let other = MemoryRegionSection(FlatRange(start: 0, size: 0x80, region: a.region, offsetInRegion: 0, readOnly: false,
                                                  dirtyLogMask: 0), in: space)
        withKnownIssue("a delete of a different range at a held address") { fresh.regionDel(other) }
        withKnownIssue("log start of an unknown range") { fresh.logStart(b, old: 0, new: 1) }
        let n = try EventNotifier()
        withKnownIssue("an eventfd delete of an unknown ioeventfd") {
            fresh.eventfdDel(MemoryRegionIoeventfd(start: 0, size: 4, matchData: false, data: 0, notifier: n), in: space)
        }
        withKnownIssue("a coalesced delete of an unknown range") { fresh.coalescedIODel(a, address: 0, length: 4) }
        // And the legitimate sequence records nothing.
        fresh.regionDel(a)
        #expect(fresh.sectionCount == 0)
    }
}
