import Testing
import VMMSys
@testable import Memory

@Suite struct GuestMemoryTests {
    let system = MemorySystem()

    @Test func readsAndWritesAcrossRegionsAndRefusesDevices() throws {
        let root = MemoryRegion.container(name: "root", size: UInt128(1) << 64)
        let low = try MemoryRegion.ram(name: "low", size: 0x1000)
        let high = try MemoryRegion.ram(name: "high", size: 0x1000)
        root.addSubregion(low, at: 0)
        root.addSubregion(high, at: 0x1000)
        root.addSubregion(dummyIO("dev", 0x100), at: 0x2000)
        let mem = AddressSpace(root: root, name: "m", system: system).guestMemory
        try mem.write([1, 2, 3, 4, 5, 6], at: 0xffd)
        #expect(try mem.read(at: 0xffd, count: 6) == [1, 2, 3, 4, 5, 6])
        #expect(low.ramBlock?.read(offset: 0xfff, count: 1) == [3])
        #expect(high.ramBlock?.read(offset: 0, count: 3) == [4, 5, 6])
        #expect(throws: GuestMemoryError.notRAM(address: 0x2000)) { try mem.read(at: 0x1ffe, count: 4) }
        #expect(throws: GuestMemoryError.self) { try mem.write([9, 9], at: UInt64.max) }
        #expect(throws: GuestMemoryError.notRAM(address: 0x3000)) { try mem.store(UInt64(1), at: 0x3000) }
        // A failing write leaves everything untouched.
        #expect(try mem.read(at: 0x1ffe, count: 2) == [0, 0])
        try mem.store(UInt64(0x0102_0304_0506_0708), at: 0x10)
        #expect(try mem.load(UInt16.self, at: 0x10) == 0x0708)
    }
}

@Suite struct MtreeTests {
    @Test func treeAndFlatViewInQEMUShape() throws {
        let system = MemorySystem()
        let root = MemoryRegion.container(name: "system", size: UInt128(1) << 64)
        let ram = try MemoryRegion.ram(name: "pc.ram", size: 0x10000)
        root.addSubregion(MemoryRegion.alias(name: "ram-below-4g", target: ram, offset: 0, size: 0x8000), at: 0)
        let dev = dummyIO("testdev", 0x1000)
        root.addSubregion(dev, at: 0xfe00_0000, priority: 1)
        let space = AddressSpace(root: root, name: "memory", system: system)
        try dev.addEventfd(offset: 4, size: 1, matchData: true, data: 0xfa, notifier: try EventNotifier())
        let tree = MemoryTreeDump.tree(system)
        #expect(tree.contains("address-space: memory\n  0000000000000000-ffffffffffffffff (prio 0, i/o): system\n"))
        #expect(tree.contains("    0000000000000000-0000000000007fff (prio 0, ram): alias ram-below-4g @pc.ram 0000000000000000-0000000000007fff\n"))
        #expect(tree.contains("    00000000fe000000-00000000fe000fff (prio 1, i/o): testdev\n"))
        #expect(tree.contains("memory-region: pc.ram\n  0000000000000000-000000000000ffff (prio 0, ram): pc.ram\n"))
        let flat = MemoryTreeDump.flat(system)
        #expect(flat.contains("  0000000000000000-0000000000007fff (prio 0, ram): pc.ram\n"))
        #expect(MemoryTreeDump.ioeventfds(system).contains("00000000fe000004 size=1 data=0xfa"))
        _ = space
    }
}
