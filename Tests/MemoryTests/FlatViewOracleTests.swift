import MemoryOracle
import TestSupport
import Testing
@testable import Memory

/// Renders thousands of random trees and compares every address range against a naive oracle
/// that applies QEMU's rules directly, then mutates them inside transactions and compares
/// again — including what a listener was told against the truth.
@Suite struct FlatViewOracleTests {
    /// The test's own model of sibling order and the naive oracle live in `MemoryOracle`,
    /// shared with the memory-dispatch fuzz target.
    typealias Model = RegionInsertionModel

    static func check(_ space: AddressSpace, _ m: Model, seed: UInt64, step: String) {
        let problem = FlatViewOracle.mismatch(space, m)
        #expect(problem == nil, "seed \(seed) \(step): \(problem ?? "")")
    }

    static func randomAddress(_ g: inout SeededGenerator) -> UInt64 {
        switch g.next() % 6 {
        case 0: return 0
        case 1, 2: return (g.next() % 64) * 0x100
        case 3: return UInt64.max - (g.next() % 16) * 0x100
        case 4: return (UInt64.max - (g.next() % 64) * 0x100) &+ 1
        default: return g.next() & ~0xff
        }
    }

    static func randomSize(_ g: inout SeededGenerator) -> UInt128 {
        switch g.next() % 6 {
        case 0: return UInt128(1) << 64
        case 1: return (UInt128(1) << 64) - UInt128(g.next() % 16) * 0x100
        case 2: return UInt128(g.next() >> 1)
        default: return UInt128((g.next() % 32 + 1) * 0x100)
        }
    }

    @Test func randomTreesMatchOracle() throws {
        let base = UInt64.random(in: 0...UInt64.max >> 8)
        for n in 0..<1500 {
            let seed = base &+ UInt64(n)
            try Self.runOne(seed: seed)
        }
    }

    /// A known-tricky tree kept as a fixed case.
    @Test func fixedSeeds() throws {
        for seed: UInt64 in [1, 2, 3, 42, 0xdead_beef] { try Self.runOne(seed: seed) }
    }

    /// Larger trees (150 regions, so deep nesting and many overlaps) against the per-address
    /// oracle; `FlatViewScaleTests` goes to thousands against the reference renderer.
    @Test func mediumTreesMatchOracle() throws {
        let base = UInt64.random(in: 0...UInt64.max >> 8)
        for n in 0..<8 { try Self.runOne(seed: base &+ UInt64(n), regions: 150) }
    }

    static func runOne(seed: UInt64, regions: Int? = nil) throws {
        var g = SeededGenerator(seed: seed)
        let system = MemorySystem()
        let m = Model()
        let root = MemoryRegion.container(name: "root", size: UInt128(1) << 64)
        // Alias targets live outside the tree (so aliases cannot form cycles).
        var pool: [MemoryRegion] = []
        for i in 0..<3 {
            let r: MemoryRegion
            switch g.next() % 3 {
            case 0: r = dummyIO("pool\(i)", randomSize(&g))
            case 1: r = try MemoryRegion.ram(name: "poolram\(i)", size: 0x2000)
            default:
                r = MemoryRegion.container(name: "poolc\(i)", size: randomSize(&g))
                for j in 0..<2 {
                    let s = dummyIO("pool\(i).\(j)", randomSize(&g))
                    r.addSubregion(s, at: randomAddress(&g), priority: Int32(g.next() % 3) - 1)
                    m.inserted(s)
                }
            }
            if g.next() % 4 == 0, !pool.isEmpty {
                let a = MemoryRegion.alias(name: "poolalias\(i)", target: pool[Int(g.next() % UInt64(pool.count))],
                                           offset: randomAddress(&g), size: randomSize(&g))
                pool.append(a)
            }
            pool.append(r)
        }
        var parents: [MemoryRegion] = [root]
        var placed: [MemoryRegion] = []
        func makeRegion(_ i: Int) throws -> MemoryRegion {
            switch g.next() % 5 {
            case 0: let c = MemoryRegion.container(name: "c\(i)", size: randomSize(&g)); parents.append(c); return c
            case 1: return try MemoryRegion.ram(name: "ram\(i)", size: 0x1000 * (g.next() % 3 + 1))
            case 2: return MemoryRegion.alias(name: "alias\(i)", target: pool[Int(g.next() % UInt64(pool.count))],
                                              offset: randomAddress(&g), size: randomSize(&g))
            default:
                let r = dummyIO("io\(i)", randomSize(&g))
                if g.next() % 4 == 0 { parents.append(r) }   // a terminating region with children
                return r
            }
        }
        func place(_ r: MemoryRegion) {
            let parent = parents[Int(g.next() % UInt64(parents.count))]
            guard parent !== r else { return }
            parent.addSubregion(r, at: randomAddress(&g), priority: Int32(g.next() % 5) - 2)
            m.inserted(r)
            placed.append(r)
        }
        let count = regions ?? Int(g.next() % 10) + 2
        for i in 0..<count {
            let r = try makeRegion(i)
            place(r)
            if g.next() % 6 == 0 { r.setEnabled(false) }
            if g.next() % 8 == 0 { r.setReadOnly(true) }
        }
        let space = AddressSpace(root: root, name: "test", system: system)
        let listener = RecordingListener("L", eventfds: false)
        space.register(listener)
        check(space, m, seed: seed, step: "initial")
        compareListener(listener, space, seed: seed, step: "initial")

        for round in 0..<5 {
            system.withTransaction {
                for _ in 0..<(g.next() % 4 + 1) {
                    guard !placed.isEmpty else { break }
                    let r = placed[Int(g.next() % UInt64(placed.count))]
                    switch g.next() % 8 {
                    case 0: r.setEnabled(!r.isEnabled)
                    case 1:
                        let a = randomAddress(&g)
                        if a != r.address { r.setAddress(a); m.inserted(r) }
                    case 2:
                        let p = Int32(g.next() % 5) - 2
                        if p != r.priority { r.setPriority(p); m.inserted(r) }
                    case 3: r.setSize(randomSize(&g))
                    case 4: if r.aliasTarget != nil { r.setAliasOffset(randomAddress(&g)) }
                    case 5:
                        if let c = r.container, !(parents.contains { $0 === r }) {
                            c.removeSubregion(r)
                            placed.removeAll { $0 === r }
                            if g.next() % 2 == 0 { place(r) }
                        }
                    case 6: if let r = try? makeRegion(100 + round) { place(r) }
                    default: r.setReadOnly(!r.isReadOnly)
                    }
                }
            }
            check(space, m, seed: seed, step: "round \(round)")
            compareListener(listener, space, seed: seed, step: "round \(round)")
        }
    }

    static func compareListener(_ l: RecordingListener, _ space: AddressSpace, seed: UInt64, step: String) {
        let believed = l.believedRanges
        let truth = space.currentMap.ranges
        #expect(believed.count == truth.count, "seed \(seed) \(step): listener has \(believed.count) ranges, view \(truth.count)")
        for (b, t) in zip(believed, truth) {
            let same = b.start == t.start && b.size == t.size && b.region == ObjectIdentifier(t.region)
                && b.offset == t.offsetInRegion && b.readOnly == t.readOnly
            #expect(same, "seed \(seed) \(step): listener range at 0x\(String(b.start, radix: 16)) differs")
            if !same { return }
        }
    }
}
