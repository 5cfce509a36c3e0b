import Devices
import Memory

/// The MSI-X table and PBA (through the memory core, in every width the region admits and
/// refuses) and the capability's message control, with vectors firing in between, for
/// tables of 1 to 64 vectors.
///
/// Input: `u8` table choice, then ops until the input ends, each `u8` kind then operands.
///
/// Checks: routes follow the table exactly — while MSI-X is enabled and the function is not
/// masked, a vector has a live route (an irqfd) iff its entry is unmasked, carrying the entry's address and data, and none
/// while disabled; a disconnect always names a live route; a PBA bit is set only for a vector
/// that is masked (by itself or the function mask) or disabled, never for one that could fire.
func fuzzMSIX(_ data: [UInt8]) throws(FuzzFailure) {
    try MSIXFixture.shared.with { f throws(FuzzFailure) in try f.run(data) }
}

final class MSIXFixture {
    static let shared = Fixture { MSIXFixture() }
    static let name = FuzzTarget.msix.rawValue
    static let vectorCounts = [1, 2, 3, 17, 33, 64]
    static let base: UInt64 = 0xfebf_0000
    static let maxOps = 512

    let memory: AddressSpace
    let root: MemoryRegion
    let tables: [(msix: MSIX, controller: CheckingMSIController)]

    init() {
        let system = MemorySystem()
        (root, memory) = makeSpace("memory", size: UInt128(1) << 64, system: system)
        tables = Self.vectorCounts.map { n in
            let c = CheckingMSIController(connects: true)
            return (MSIX(vectors: n, controller: c, name: "msix-\(n)"), c)
        }
    }

    /// Every vector masked with no message and nothing pending, MSI-X disabled.
    func reset(_ msix: MSIX) {
        msix.controlChanged(0x8000)
        for v in 0..<UInt64(msix.vectorCount) {
            memory.write(Self.base + 16 * v + 12, value: 0, size: 4)       // delivers anything pending
            for field in 0..<UInt64(3) { memory.write(Self.base + 16 * v + 4 * field, value: 0, size: 4) }
            memory.write(Self.base + 16 * v + 12, value: 1, size: 4)
        }
        msix.controlChanged(0)
    }

    func run(_ data: [UInt8]) throws(FuzzFailure) {
        var input = FuzzInput(data)
        let (msix, controller) = tables[input.below(tables.count)]
        root.addSubregion(msix.region, at: Self.base)
        defer {
            reset(msix)
            root.removeSubregion(msix.region)
            _ = controller.takeProblems()
        }
        reset(msix)
        _ = controller.takeProblems()
        var control: UInt16 = 0
        for _ in 0..<Self.maxOps where !input.isEmpty {
            let op = input.u8()
            switch op % 6 {
            case 0, 1:  // table write, mostly well-formed dwords
                let offset = op & 0x80 != 0 ? UInt64(input.u16() % 0x1000) : UInt64(input.below(msix.vectorCount)) * 16 + UInt64(input.u8() & 0xc)
                memory.write(Self.base + offset, value: input.u64(), size: op & 0x40 != 0 ? accessSize(input.u8()) : 4)
            case 2:
                _ = memory.read(Self.base + UInt64(input.u16() % 0x1000), size: accessSize(input.u8()))
            case 3:
                control = input.u16()
                msix.controlChanged(control)
            case 4:
                msix.notify(Int(Int8(bitPattern: input.u8())))
            default:
                _ = memory.read(Self.base + MSIX.pbaOffset + UInt64(input.u8() & 0xc), size: 4)
            }
            try check(msix, controller, control)
        }
    }

    private func check(_ msix: MSIX, _ controller: CheckingMSIController, _ control: UInt16) throws(FuzzFailure) {
        for p in controller.takeProblems() { throw FuzzFailure(Self.name, p) }
        let enabled = control & 0x8000 != 0, functionMasked = control & 0x4000 != 0
        var expected: [String] = []
        for v in 0..<UInt64(msix.vectorCount) {
            let entry = (0..<UInt64(4)).map { UInt32(truncatingIfNeeded: memory.read(Self.base + 16 * v + 4 * $0, size: 4).value) }
            let masked = entry[3] & 1 != 0
            // A vector holds a route exactly while it could fire: enabled, function not masked,
            // entry not masked (MSIX releases routes otherwise; see MSIX.controlChanged).
            if enabled && !functionMasked && !masked { expected.append("\(hex(UInt64(entry[1]) << 32 | UInt64(entry[0])))/\(hex(entry[2]))") }
            let pbaWord = memory.read(Self.base + MSIX.pbaOffset + 4 * (v / 32), size: 4).value
            let pending = pbaWord >> (v % 32) & 1 != 0
            try require(!pending || masked || functionMasked || !enabled, Self.name,
                        "vector \(v) is pending although it is enabled and unmasked")
        }
        let live = controller.liveMessages.map { "\(hex($0.address))/\(hex($0.data))" }
        try require(live.sorted() == expected.sorted(), Self.name,
                    "live routes \(live.sorted()) do not match the unmasked entries \(expected.sorted())")
    }
}
