import Memory
import MemoryOracle
import Synchronization

/// Random guest accesses into a random memory-region tree, checked byte by byte against the
/// flat-view oracle (`FlatViewOracle`, the same one `FlatViewOracleTests` uses).
///
/// The fuzzer builds a tree (containers, RAM, ROM, aliases onto regions outside the tree,
/// device regions; addresses and sizes near 0, near 2^64 and anywhere; priorities,
/// disabled and read-only regions), then alternates rounds of accesses — reads and writes of
/// 1 to 8 bytes at and around every boundary — with rounds of topology changes in
/// transactions.
///
/// Oracle: the view agrees with `FlatViewOracle.mismatch` after every round. For each access,
/// the oracle names each byte's owner; a shadow copy keeps what each RAM byte and each
/// "plain" device byte must hold. Reads must return exactly the shadow bytes, and 0 where
/// nothing is mapped; writes must land on writable RAM and devices and nowhere else (ROM and
/// read-only RAM keep their bytes). Plain devices accept every width and alignment, so the
/// core must pass bytes through unchanged; "strict" devices accept only some widths, so only
/// the core's promises to them are checked: every callback starts inside the region, ends
/// inside it (or within the implemented minimum width past it, when widened), and uses a width
/// the region implements.
func fuzzMemoryDispatch(_ data: [UInt8]) throws(FuzzFailure) {
    try MemoryDispatchFixture.shared.with { f throws(FuzzFailure) in try f.run(data) }
}

/// A device region's backing bytes and the core's promises to it.
final class FuzzDeviceStore: @unchecked Sendable {
    // @unchecked: only touched by the single thread running the target.
    var bytes: [UInt64: UInt8] = [:]
    var violations: [String] = []
    /// The region's size (kept in step when the fuzzer resizes it).
    var size: UInt128
    let implementation: AccessConstraints

    init(size: UInt128, implementation: AccessConstraints) {
        self.size = size
        self.implementation = implementation
    }

    static func initial(_ offset: UInt64) -> UInt8 { UInt8(truncatingIfNeeded: offset &* 7 &+ 0x10) }

    func byte(_ offset: UInt64) -> UInt8 { bytes[offset] ?? Self.initial(offset) }

    private func checkCall(_ offset: UInt64, _ size: Int) {
        let minSize = max(implementation.minAccessSize, 1), maxSize = implementation.maxAccessSize == 0 ? 4 : implementation.maxAccessSize
        // An access narrower than the implemented minimum is widened, and may then reach past
        // the region's end by up to min-1 bytes, as QEMU's access_with_adjusted_size() does.
        if UInt128(offset) >= self.size || UInt128(offset) + UInt128(size) > self.size + UInt128(minSize - 1) {
            violations.append("callback at \(hex(offset)) size \(size) runs past the region's \(hex(self.size)) bytes")
        }
        if size < minSize || size > maxSize {
            violations.append("callback of \(size) bytes outside the implemented \(minSize)...\(maxSize)")
        }
    }

    var ops: MemoryRegionOps { ops(valid: implementation) }

    func ops(valid: AccessConstraints) -> MemoryRegionOps {
        MemoryRegionOps(
            read: { [self] offset, size in
                checkCall(offset, size)
                var v: UInt64 = 0
                for i in 0..<min(size, 8) { v |= UInt64(byte(offset &+ UInt64(i))) << (8 * UInt64(i)) }
                return v
            },
            write: { [self] offset, value, size in
                checkCall(offset, size)
                for i in 0..<min(size, 8) { bytes[offset &+ UInt64(i)] = UInt8(truncatingIfNeeded: value >> (8 * UInt64(i))) }
            },
            valid: valid, implementation: implementation)
    }
}

struct RegionByte: Hashable {
    var region: ObjectIdentifier
    var offset: UInt64
}

final class MemoryDispatchFixture {
    static let shared = Fixture { MemoryDispatchFixture() }
    static let name = FuzzTarget.memory.rawValue
    static let maxRegions = 14
    static let maxRounds = 6
    static let maxAccessesPerRound = 48

    let system = MemorySystem()
    let root: MemoryRegion
    let space: AddressSpace

    init() {
        (root, space) = makeSpace("memory", size: UInt128(1) << 64, system: system)
    }

    /// One run's tree and what the oracle needs to know about it.
    struct Tree {
        var model = RegionInsertionModel()
        var parents: [MemoryRegion] = []
        var placed: [MemoryRegion] = []
        var pool: [MemoryRegion] = []
        /// Plain (value-modelled) and strict device stores, by region.
        var plain: [ObjectIdentifier: FuzzDeviceStore] = [:]
        var strict: [ObjectIdentifier: FuzzDeviceStore] = [:]
        var ram: [ObjectIdentifier: (block: RAMBlock, rom: Bool)] = [:]
        /// Expected RAM contents where written (RAM starts zeroed).
        var shadowRAM: [ObjectIdentifier: [UInt64: UInt8]] = [:]
        var names = 0
    }

    static func address(_ input: inout FuzzInput) -> UInt64 {
        switch input.u8() % 6 {
        case 0: return 0
        case 1, 2: return UInt64(input.u8() % 64) * 0x100
        case 3: return UInt64.max - UInt64(input.u8() % 16) * 0x100
        case 4: return (UInt64.max - UInt64(input.u8() % 64) * 0x100) &+ 1
        default: return input.u64() & ~0xff
        }
    }

    static func size(_ input: inout FuzzInput) -> UInt128 {
        switch input.u8() % 6 {
        case 0: return UInt128(1) << 64
        case 1: return (UInt128(1) << 64) - UInt128(input.u8() % 16) * 0x100
        case 2: return UInt128(input.u64() >> 1)
        default: return UInt128((UInt64(input.u8() % 32) + 1) * 0x100)
        }
    }

    static let strictConstraints: [(valid: AccessConstraints, impl: AccessConstraints)] = [
        (AccessConstraints(minAccessSize: 1, maxAccessSize: 4), AccessConstraints(minAccessSize: 1, maxAccessSize: 4)),
        (AccessConstraints(minAccessSize: 4, maxAccessSize: 8), AccessConstraints(minAccessSize: 4, maxAccessSize: 4)),
        (AccessConstraints(minAccessSize: 1, maxAccessSize: 1), AccessConstraints(minAccessSize: 1, maxAccessSize: 1)),
        (AccessConstraints(minAccessSize: 1, maxAccessSize: 8, unaligned: true), AccessConstraints(minAccessSize: 2, maxAccessSize: 2)),
        (AccessConstraints(minAccessSize: 0, maxAccessSize: 0), AccessConstraints(minAccessSize: 0, maxAccessSize: 0)),
    ]

    private func device(_ t: inout Tree, _ input: inout FuzzInput, name: String, size: UInt128) -> MemoryRegion {
        let kind = input.u8()
        if kind & 1 == 0 {
            let all = AccessConstraints(minAccessSize: 1, maxAccessSize: 8, unaligned: true)
            let store = FuzzDeviceStore(size: size, implementation: all)
            let r = MemoryRegion.io(name: name, size: size, ops: store.ops)
            t.plain[ObjectIdentifier(r)] = store
            return r
        }
        let c = Self.strictConstraints[Int(kind >> 1) % Self.strictConstraints.count]
        let store = FuzzDeviceStore(size: size, implementation: c.impl)
        let r = MemoryRegion.io(name: name, size: size, ops: store.ops(valid: c.valid))
        t.strict[ObjectIdentifier(r)] = store
        return r
    }

    private func ram(_ t: inout Tree, _ name: String, size: UInt64, rom: Bool) -> MemoryRegion {
        let r: MemoryRegion
        do { r = rom ? try MemoryRegion.rom(name: name, size: size) : try MemoryRegion.ram(name: name, size: size) } catch {
            fatalError("fuzz fixture: \(error)")
        }
        t.ram[ObjectIdentifier(r)] = (r.ramBlock!, rom)
        return r
    }

    private func makeRegion(_ t: inout Tree, _ input: inout FuzzInput) -> MemoryRegion {
        t.names += 1
        let name = "r\(t.names)"
        switch input.u8() % 6 {
        case 0:
            let c = MemoryRegion.container(name: name, size: Self.size(&input))
            t.parents.append(c)
            return c
        case 1: return ram(&t, name, size: 0x1000 * (UInt64(input.u8() % 3) + 1), rom: false)
        case 2: return ram(&t, name, size: 0x1000, rom: true)
        case 3:
            return MemoryRegion.alias(name: name, target: t.pool[input.below(t.pool.count)],
                                      offset: Self.address(&input), size: Self.size(&input))
        default:
            let r = device(&t, &input, name: name, size: Self.size(&input))
            if input.u8() % 4 == 0 { t.parents.append(r) }        // a device with children
            return r
        }
    }

    private func place(_ t: inout Tree, _ input: inout FuzzInput, _ r: MemoryRegion) {
        let parent = t.parents[input.below(t.parents.count)]
        guard parent !== r else { return }
        parent.addSubregion(r, at: Self.address(&input), priority: Int32(input.u8() % 5) - 2)
        t.model.inserted(r)
        t.placed.append(r)
    }

    func run(_ data: [UInt8]) throws(FuzzFailure) {
        var input = FuzzInput(data)
        let top = MemoryRegion.container(name: "fuzz", size: UInt128(1) << 64)
        var t = Tree()
        t.parents = [top]
        // Alias targets live outside the tree, so aliases cannot form cycles.
        for i in 0..<3 {
            let r: MemoryRegion
            switch input.u8() % 3 {
            case 0: r = device(&t, &input, name: "pool\(i)", size: Self.size(&input))
            case 1: r = ram(&t, "poolram\(i)", size: 0x2000, rom: false)
            default:
                r = MemoryRegion.container(name: "poolc\(i)", size: Self.size(&input))
                for j in 0..<2 {
                    let s = device(&t, &input, name: "pool\(i).\(j)", size: Self.size(&input))
                    r.addSubregion(s, at: Self.address(&input), priority: Int32(input.u8() % 3) - 1)
                    t.model.inserted(s)
                }
            }
            if input.u8() % 4 == 0, !t.pool.isEmpty {
                t.pool.append(MemoryRegion.alias(name: "poolalias\(i)", target: t.pool[input.below(t.pool.count)],
                                                 offset: Self.address(&input), size: Self.size(&input)))
            }
            t.pool.append(r)
        }
        for _ in 0..<(input.below(Self.maxRegions - 2) + 2) {
            let r = makeRegion(&t, &input)
            place(&t, &input, r)
            let flags = input.u8()
            if flags & 0x7 == 0 { r.setEnabled(false) }
            if flags & 0x38 == 0 { r.setReadOnly(true) }
        }
        root.addSubregion(top, at: 0)
        t.model.inserted(top)
        defer { root.removeSubregion(top) }

        for round in 0..<Self.maxRounds {
            if let problem = FlatViewOracle.mismatch(space, t.model) {
                throw FuzzFailure(Self.name, "round \(round): \(problem)")
            }
            let probes = FlatViewOracle.probes(space)
            for _ in 0..<input.below(Self.maxAccessesPerRound) {
                guard !input.isEmpty else { break }
                let op = input.u8()
                let base = probes.isEmpty ? 0 : probes[Int(input.u16()) % probes.count]
                let address = base &+ UInt64(bitPattern: Int64(Int8(bitPattern: input.u8()) % 9))
                try access(&t, &input, write: op & 1 != 0, address: address, size: Int(op >> 1 & 7) + 1)
            }
            guard !input.isEmpty else { return }
            mutate(&t, &input)
        }
    }

    private func access(_ t: inout Tree, _ input: inout FuzzInput, write: Bool, address: UInt64, size: Int) throws(FuzzFailure) {
        let owners = (0..<size).map { i -> OracleOwner? in
            let (a, o) = address.addingReportingOverflow(UInt64(i))
            return o ? nil : FlatViewOracle.owner(of: a, root: root, t.model)
        }
        func expectedByte(_ owner: OracleOwner?) -> UInt8? {
            guard let owner else { return 0 }          // QEMU: unassigned_mem_ops reads 0
            if let store = t.plain[owner.region] { return store.byte(owner.offset) }
            if t.ram[owner.region] != nil { return t.shadowRAM[owner.region]?[owner.offset] ?? 0 }
            return nil      // a strict device: not modelled
        }
        // Bytes after a device's byte that fall inside the device's own extent but belong to
        // another region in the flat view: dispatch may hand them to the device (QEMU's
        // address_space_translate_internal() clamps only RAM; the piece is then cut to the
        // implemented access size), so either owner may take them and they are not judged.
        var ambiguous = Set<Int>()
        for (i, owner) in owners.enumerated() {
            guard let owner, let store = t.plain[owner.region] ?? t.strict[owner.region] else { continue }
            var k = 1
            while i + k < size, UInt128(owner.offset) + UInt128(k) < store.size {
                let next = owners[i + k]
                if next?.region != owner.region || next?.offset != owner.offset &+ UInt64(k) { ambiguous.insert(i + k) }
                k += 1
            }
        }
        let label = "\(write ? "write" : "read") of \(size) at \(hex(address))"
        if write {
            let value = input.u64()
            space.write(address, value: value, size: size)
            for (i, owner) in owners.enumerated() {
                guard let owner, let r = t.ram[owner.region], !r.rom, !owner.readOnly else { continue }
                if ambiguous.contains(i) {
                    // Whichever owner took it, RAM now holds what it holds.
                    if let b = r.block.load(offset: owner.offset, size: 1) { t.shadowRAM[owner.region, default: [:]][owner.offset] = UInt8(truncatingIfNeeded: b) }
                    continue
                }
                t.shadowRAM[owner.region, default: [:]][owner.offset] = UInt8(truncatingIfNeeded: value >> (8 * UInt64(i)))
            }
            // What each touched byte must now hold (a later byte wins where aliases make two
            // addresses of one access the same byte).
            var want: [RegionByte: UInt8] = [:]
            for (i, owner) in owners.enumerated() where !ambiguous.contains(i) {
                guard let owner, t.plain[owner.region] != nil else { continue }
                want[RegionByte(region: owner.region, offset: owner.offset)] = UInt8(truncatingIfNeeded: value >> (8 * UInt64(i)))
            }
            for (i, owner) in owners.enumerated() where !ambiguous.contains(i) {
                guard let owner else { continue }
                if let store = t.plain[owner.region], let w = want[RegionByte(region: owner.region, offset: owner.offset)] {
                    let got = store.byte(owner.offset)
                    try require(got == w, Self.name, "\(label): device byte \(i) holds \(hex(got)), not \(hex(w))")
                } else if let r = t.ram[owner.region] {
                    let got = r.block.load(offset: owner.offset, size: 1).map { UInt8($0) }
                    let w = t.shadowRAM[owner.region]?[owner.offset] ?? 0
                    try require(got == w, Self.name,
                                "\(label): \(r.rom ? "ROM" : owner.readOnly ? "read-only RAM" : "RAM") byte \(i) holds \(String(describing: got)), not \(hex(w))")
                }
            }
        } else {
            let got = space.read(address, size: size).value
            for (i, owner) in owners.enumerated() where !ambiguous.contains(i) {
                guard let want = expectedByte(owner) else { continue }
                let byte = UInt8(truncatingIfNeeded: got >> (8 * UInt64(i)))
                try require(byte == want, Self.name, "\(label): byte \(i) reads \(hex(byte)), the oracle says \(hex(want)) (owner \(String(describing: owner)))")
            }
        }
        for store in t.plain.values.map({ $0 }) + t.strict.values.map({ $0 }) where !store.violations.isEmpty {
            throw FuzzFailure(Self.name, "\(label): \(store.violations[0])")
        }
    }

    private func mutate(_ t: inout Tree, _ input: inout FuzzInput) {
        system.withTransaction {
            for _ in 0..<(input.below(4) + 1) {
                guard !t.placed.isEmpty else { break }
                let r = t.placed[input.below(t.placed.count)]
                switch input.u8() % 8 {
                case 0: r.setEnabled(!r.isEnabled)
                case 1:
                    let a = Self.address(&input)
                    if a != r.address { r.setAddress(a); t.model.inserted(r) }
                case 2:
                    let p = Int32(input.u8() % 5) - 2
                    if p != r.priority { r.setPriority(p); t.model.inserted(r) }
                case 3:
                    guard r.ramBlock == nil else { break }     // a guest cannot resize RAM
                    let size = Self.size(&input)
                    r.setSize(size)
                    (t.plain[ObjectIdentifier(r)] ?? t.strict[ObjectIdentifier(r)])?.size = size
                case 4: if r.aliasTarget != nil { r.setAliasOffset(Self.address(&input)) }
                case 5:
                    if let c = r.container, !t.parents.contains(where: { $0 === r }) {
                        c.removeSubregion(r)
                        t.placed.removeAll { $0 === r }
                        if input.bool() { place(&t, &input, r) }
                    }
                case 6: place(&t, &input, makeRegion(&t, &input))
                default: r.setReadOnly(!r.isReadOnly)
                }
            }
        }
    }
}
