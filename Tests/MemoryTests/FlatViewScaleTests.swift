import TestSupport
import Testing
@testable import Memory

/// The O(n log n) renderer against the quadratic reference (QEMU's `flatview_insert()`
/// algorithm, `ReferenceRenderer`) on large random trees — thousands of regions, nested
/// containers, aliases, priorities, overlaps, disabled, read-only and logging regions — and
/// through rounds of random changes, with a listener's belief checked against the truth after
/// each. The results must be identical, range for range.
@Suite struct FlatViewScaleTests {
    struct Tree {
        let system = MemorySystem()
        let root = MemoryRegion.container(name: "root", size: UInt128(1) << 64)
        var parents: [MemoryRegion] = []
        var placed: [MemoryRegion] = []
        var pool: [MemoryRegion] = []
    }

    /// Addresses packed into a 4 MiB window so that siblings overlap often, with some at the
    /// top of the space.
    static func address(_ g: inout SeededGenerator, window: UInt64 = 0x40000) -> UInt64 {
        switch g.next() % 16 {
        case 0: return UInt64.max - (g.next() % 64) * 0x10
        case 1: return 0
        default: return (g.next() % window) * 0x10
        }
    }

    /// Mostly small, some large; a container may span the whole space.
    static func size(_ g: inout SeededGenerator, container: Bool = false) -> UInt128 {
        switch g.next() % 16 {
        case _ where container: return g.next() % 2 == 0 ? UInt128(1) << 64 : UInt128((g.next() % 4 + 1) * 0x10_0000)
        case 0: return UInt128((g.next() % 0x40 + 1) * 0x1000)
        case 1, 2: return UInt128((g.next() % 0x40 + 1) * 0x100)
        default: return UInt128((g.next() % 0x40 + 1) * 0x10)
        }
    }

    static func build(seed: UInt64, regions: Int) throws -> Tree {
        var g = SeededGenerator(seed: seed)
        var t = Tree()
        let ram = try MemoryRegion.ram(name: "bigram", size: 0x10_0000)
        t.pool = [ram, dummyIO("poolio", 0x10000), MemoryRegion.container(name: "poolc", size: 0x8000)]
        for j in 0..<20 {
            let s = dummyIO("poolc.\(j)", size(&g))
            t.pool[2].addSubregion(s, at: (g.next() % 0x800) * 0x10, priority: Int32(g.next() % 3) - 1)
        }
        t.parents = [t.root]
        t.root.withTransaction {
            for i in 0..<regions { place(&t, make(&t, &g, i), &g) }
        }
        return t
    }

    static func make(_ t: inout Tree, _ g: inout SeededGenerator, _ i: Int) -> MemoryRegion {
        let r: MemoryRegion
        switch g.next() % 8 {
        case 0:
            r = MemoryRegion.container(name: "c\(i)", size: size(&g, container: true))
            t.parents.append(r)
        case 1:
            r = MemoryRegion.alias(name: "a\(i)", target: t.pool[Int(g.next() % UInt64(t.pool.count))],
                                   offset: (g.next() % 0x1000) * 0x10, size: size(&g))
        case 2:
            // RAM through an alias of the big block (RAM regions cost host memory each).
            r = MemoryRegion.alias(name: "ram\(i)", target: t.pool[0], offset: (g.next() % 0x100) * 0x1000, size: 0x1000)
        default:
            r = dummyIO("io\(i)", size(&g))
            if g.next() % 16 == 0 { t.parents.append(r) }
        }
        if g.next() % 10 == 0 { r.setEnabled(false) }
        if g.next() % 12 == 0 { r.setReadOnly(true) }
        return r
    }

    static func place(_ t: inout Tree, _ r: MemoryRegion, _ g: inout SeededGenerator) {
        // Mostly the root and the most recent containers, so trees get deep as well as wide.
        let k = g.next() % 3 == 0 ? 0 : max(0, t.parents.count - 1 - Int(g.next() % 8))
        let parent = t.parents[k]
        guard parent !== r else { return }
        parent.addSubregion(r, at: address(&g, window: k == 0 ? 0x40000 : 0x10000), priority: Int32(g.next() % 5) - 2)
        t.placed.append(r)
    }

    static func expectSame(_ space: AddressSpace, global: Bool = false, _ what: String) {
        let reference = ReferenceRenderer.render(root: space.root, globalDirtyLog: global)
        let diff = ReferenceRenderer.difference(space.currentMap.ranges, reference)
        #expect(diff == nil, "\(what): \(diff ?? "")")
    }

    @Test(arguments: [UInt64(1), 2, 3])
    func largeTreesMatchTheReference(seed: UInt64) throws {
        var t = try Self.build(seed: seed, regions: 4000)
        let space = AddressSpace(root: t.root, name: "scale", system: t.system)
        let l = RecordingListener("L", eventfds: false)
        space.register(l)
        #expect(space.currentMap.ranges.count > 800)
        Self.expectSame(space, "seed \(seed) initial")
        FlatViewOracleTests.compareListener(l, space, seed: seed, step: "initial")

        var g = SeededGenerator(seed: seed &* 7919)
        for round in 0..<15 {
            t.system.withTransaction {
                for _ in 0..<(g.next() % 40 + 1) {
                    let r = t.placed[Int(g.next() % UInt64(t.placed.count))]
                    switch g.next() % 9 {
                    case 0: r.setEnabled(!r.isEnabled)
                    case 1: r.setAddress(Self.address(&g))
                    case 2: r.setPriority(Int32(g.next() % 5) - 2)
                    case 3: r.setSize(Self.size(&g))
                    case 4: if r.aliasTarget != nil { r.setAliasOffset((g.next() % 0x1000) * 0x10) }
                    case 5:
                        if let c = r.container, !(t.parents.contains { $0 === r }) {
                            c.removeSubregion(r)
                            t.placed.removeAll { $0 === r }
                            if g.next() % 2 == 0 { Self.place(&t, r, &g) }
                        }
                    case 6: Self.place(&t, Self.make(&t, &g, 10_000 + round), &g)
                    case 7: t.pool[0].setDirtyLogging(g.next() % 2 == 0, client: .vga)
                    default: r.setReadOnly(!r.isReadOnly)
                    }
                }
            }
            Self.expectSame(space, "seed \(seed) round \(round)")
            FlatViewOracleTests.compareListener(l, space, seed: seed, step: "round \(round)")
        }
        // Global dirty logging re-renders every RAM range with the migration bit.
        t.system.startGlobalDirtyLog()
        Self.expectSame(space, global: true, "seed \(seed) global dirty log")
        #expect(space.currentMap.ranges.contains { $0.dirtyLogMask & DirtyMemoryClient.migration.mask != 0 })
        t.system.stopGlobalDirtyLog()
        Self.expectSame(space, "seed \(seed) global dirty log stopped")
    }

    /// 20 000 overlapping siblings of mixed priorities in one container: the shape where
    /// QEMU's insertion is quadratic.
    @Test func twentyThousandOverlappingSiblings() {
        var g = SeededGenerator(seed: 0x5ca1e)
        let system = MemorySystem()
        let root = MemoryRegion.container(name: "root", size: UInt128(1) << 64)
        var all: [MemoryRegion] = []
        system.withTransaction {
            for i in 0..<20_000 {
                let r = dummyIO("r\(i)", UInt128((g.next() % 0x100 + 1) * 0x10))
                root.addSubregion(r, at: (g.next() % 0x10000) * 0x10, priority: Int32(g.next() % 3))
                all.append(r)
            }
        }
        let space = AddressSpace(root: root, name: "flat", system: system)
        Self.expectSame(space, "initial")
        system.withTransaction {
            for _ in 0..<50 { all[Int(g.next() % 20_000)].setAddress((g.next() % 0x10000) * 0x10) }
        }
        Self.expectSame(space, "after moves")
    }

    /// Moving one region among 10 000 tells the listener exactly one delete and one add; every
    /// other range is a nop.
    @Test func movingOneAmongTenThousandIsOneDelOneAdd() {
        let system = MemorySystem()
        let root = MemoryRegion.container(name: "root", size: UInt128(1) << 64)
        var all: [MemoryRegion] = []
        system.withTransaction {
            for i in 0..<10_000 {
                let r = dummyIO("r\(i)", 0x100)
                root.addSubregion(r, at: UInt64(i) * 0x1000)
                all.append(r)
            }
        }
        let space = AddressSpace(root: root, name: "m", system: system)
        let l = RecordingListener("L", eventfds: false)
        space.register(l)
        l.log.clear()
        system.withTransaction { all[5000].setAddress(0x1_0000_0000) }
        #expect(l.log.matching(".del") == ["L.del r5000@0x1388000"])
        #expect(l.log.matching(".add") == ["L.add r5000@0x100000000"])
        #expect(l.log.matching(".nop").count == 9999)
        Self.expectSame(space, "after the move")
    }
}
