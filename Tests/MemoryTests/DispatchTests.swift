import Testing
import VMMSys
@testable import Memory

/// QEMU's access rules: `memory_access_size()` splitting by the valid constraints, then
/// `access_with_adjusted_size()` splitting/widening to implemented sizes.
@Suite struct DispatchTests {
    let system = MemorySystem()

    func space(_ ops: MemoryRegionOps, size: UInt128 = 0x100, at: UInt64 = 0) -> AddressSpace {
        let root = MemoryRegion.container(name: "root", size: UInt128(1) << 64)
        root.addSubregion(MemoryRegion.io(name: "dev", size: size, ops: ops), at: at)
        return AddressSpace(root: root, name: "t", system: system)
    }

    struct Case: Sendable, CustomStringConvertible {
        var validMax: Int, validMin: Int = 1, unaligned: Bool = false, implMin: Int, implMax: Int
        var write: Bool, offset: UInt64, size: Int, value: UInt64 = 0
        var calls: [String], result: MemTxResult = .ok, readValue: UInt64? = nil
        var description: String { "\(write ? "w" : "r")\(size)@\(offset) valid \(validMin)-\(validMax)\(unaligned ? "u" : "") impl \(implMin)-\(implMax)" }
    }

    // Hand-computed from QEMU's rules. Backing bytes read as (offset + 0x10) until written.
    static let table: [Case] = [
        Case(validMax: 4, implMin: 1, implMax: 4, write: true, offset: 0, size: 8, value: 0x1122334455667788,
             calls: ["w 0 4 0x55667788", "w 4 4 0x11223344"]),
        Case(validMax: 8, implMin: 1, implMax: 8, write: true, offset: 0, size: 8, value: 0x1122334455667788,
             calls: ["w 0 8 0x1122334455667788"]),
        Case(validMax: 8, implMin: 1, implMax: 4, write: true, offset: 8, size: 8, value: 0x1122334455667788,
             calls: ["w 8 4 0x55667788", "w 12 4 0x11223344"]),
        Case(validMax: 4, implMin: 1, implMax: 1, write: false, offset: 0, size: 4,
             calls: ["r 0 1", "r 1 1", "r 2 1", "r 3 1"], readValue: 0x13121110),
        Case(validMax: 4, implMin: 1, implMax: 2, write: false, offset: 4, size: 4,
             calls: ["r 4 2", "r 6 2"], readValue: 0x17161514),
        Case(validMax: 4, implMin: 4, implMax: 4, write: true, offset: 0, size: 1, value: 0xab,
             calls: ["w 0 4 0xab"]),
        Case(validMax: 4, implMin: 4, implMax: 4, write: false, offset: 0, size: 2,
             calls: ["r 0 4"], readValue: 0x1110),
        Case(validMax: 4, implMin: 1, implMax: 4, write: true, offset: 1, size: 4, value: 0xddccbbaa,
             calls: ["w 1 1 0xaa", "w 2 2 0xccbb", "w 4 1 0xdd"]),
        Case(validMax: 4, unaligned: true, implMin: 1, implMax: 4, write: true, offset: 1, size: 4, value: 0xddccbbaa,
             calls: ["w 1 4 0xddccbbaa"]),
        Case(validMax: 4, validMin: 4, implMin: 1, implMax: 4, write: true, offset: 0, size: 1, value: 1,
             calls: [], result: .decodeError),
        Case(validMax: 4, validMin: 4, implMin: 1, implMax: 4, write: false, offset: 0, size: 2,
             calls: [], result: .decodeError, readValue: 0),
        Case(validMax: 2, implMin: 1, implMax: 2, write: false, offset: 2, size: 8,
             calls: ["r 2 2", "r 4 2", "r 6 2", "r 8 2"], readValue: 0x1918171615141312),
        Case(validMax: 0, implMin: 0, implMax: 0, write: true, offset: 0, size: 8, value: 0x0102030405060708,
             calls: ["w 0 4 0x5060708", "w 4 4 0x1020304"]),
    ]

    @Test(arguments: table) func accessSizeTable(_ c: Case) {
        let rec = AccessRecorder()
        let ops = rec.ops(valid: AccessConstraints(minAccessSize: c.validMin, maxAccessSize: c.validMax, unaligned: c.unaligned),
                          impl: AccessConstraints(minAccessSize: c.implMin, maxAccessSize: c.implMax))
        let s = space(ops)
        if c.write {
            #expect(s.write(c.offset, value: c.value, size: c.size) == c.result)
        } else {
            let (v, r) = s.read(c.offset, size: c.size)
            #expect(r == c.result)
            if let expect = c.readValue { #expect(v == expect, "0x\(String(v, radix: 16))") }
        }
        #expect(rec.all == c.calls)
    }

    /// Every width, offset and constraint combination: calls stay within the implemented
    /// sizes and inside the access, and a write then read of the same bytes round-trips
    /// whenever nothing was widened.
    @Test func exhaustiveRoundTrip() {
        for validMax in [1, 2, 4, 8] {
            for unaligned in [false, true] {
                for implMin in [1, 2, 4] {
                    for implMax in [1, 2, 4, 8] where implMax >= implMin {
                        for size in [1, 2, 4, 8] {
                            for offset in UInt64(0)..<8 {
                                let rec = AccessRecorder()
                                let s = space(rec.ops(valid: AccessConstraints(minAccessSize: 1, maxAccessSize: validMax, unaligned: unaligned),
                                                      impl: AccessConstraints(minAccessSize: implMin, maxAccessSize: implMax)))
                                let value: UInt64 = 0x8877_6655_4433_2211 & (size == 8 ? .max : (1 << (8 * UInt64(size))) - 1)
                                #expect(s.write(0x20 + offset, value: value, size: size) == .ok)
                                for call in rec.all {
                                    let parts = call.split(separator: " ")
                                    let o = UInt64(parts[1])!, n = Int(parts[2])!
                                    #expect(n >= implMin && n <= implMax || n == implMin)
                                    #expect(o >= 0x20 + offset && o < 0x20 + offset + UInt64(size))
                                }
                                let widened = implMin > 1
                                let (v, r) = s.read(0x20 + offset, size: size)
                                #expect(r == .ok)
                                if !widened { #expect(v == value, "valid \(validMax) u\(unaligned) impl \(implMin)-\(implMax) w\(size)@\(offset)") }
                            }
                        }
                    }
                }
            }
        }
    }

    @Test func bigEndianDeviceValuesAreSwapped() {
        let rec = AccessRecorder()
        let s = space(MemoryRegionOps(read: { _, _ in 0x1122_3344 }, write: { o, v, n in rec.add("w \(o) \(n) \(hx(v))") },
                                      endianness: .big))
        #expect(s.read(0, size: 4).value == 0x4433_2211)
        s.write(0, value: 0x4433_2211, size: 4)
        #expect(rec.all == ["w 0 4 0x11223344"])
    }

    @Test func unassignedReadsOnesAndDropsWrites() {
        let s = space(AccessRecorder().ops(valid: .init(), impl: .init()), at: 0x1000)
        let (v, r) = s.read(0x10, size: 4)
        #expect(v == 0xffff_ffff && r == .decodeError)
        #expect(s.write(0x10, value: 1, size: 4) == .decodeError)
        #expect(s.counters.unassignedReads == 1 && s.counters.unassignedWrites == 1)
        // Straddling the device's start: the first two bytes are unassigned, the rest decode.
        let (v2, _) = s.read(0xffe, size: 4)
        #expect(v2 == 0x1110_ffff)
        // Wrapping past the top of the address space is unassigned too, never a trap.
        #expect(s.read(UInt64.max, size: 8).result == .decodeError)
    }

    @Test func ramAndRomThroughDispatch() throws {
        let root = MemoryRegion.container(name: "root", size: UInt128(1) << 64)
        let ram = try MemoryRegion.ram(name: "ram", size: 0x1000)
        let rom = try MemoryRegion.rom(name: "rom", size: 0x1000)
        root.addSubregion(ram, at: 0)
        root.addSubregion(rom, at: 0x1000)
        let s = AddressSpace(root: root, name: "m", system: system)
        s.write(0xffc, value: 0x8877_6655_4433_2211, size: 8)   // straddles RAM and ROM
        #expect(try s.guestMemory.load(UInt32.self, at: 0xffc) == 0x4433_2211)
        #expect(try s.guestMemory.load(UInt32.self, at: 0x1000) == 0)        // ROM kept its zeros
        try s.guestMemory.store(UInt32(0xcafe_babe), at: 0x1000)             // loaders may fill ROM
        #expect(s.read(0x1000, size: 4).value == 0xcafe_babe)
        #expect(s.counters.rejected == 1)
    }

    @Test func userspaceSignalsIoeventfdsWithoutAccelerator() throws {
        let rec = AccessRecorder()
        let root = MemoryRegion.container(name: "root", size: 0x10000)
        let dev = MemoryRegion.io(name: "dev", size: 0x100, ops: rec.ops(valid: .init(), impl: .init()))
        root.addSubregion(dev, at: 0x100)
        let s = AddressSpace(root: root, name: "io", system: system)
        let n = try EventNotifier(), any = try EventNotifier()
        try dev.addEventfd(offset: 0x10, size: 1, matchData: true, data: 0xfa, notifier: n)
        try dev.addEventfd(offset: 0x20, size: 0, matchData: false, data: 0, notifier: any)
        s.write(0x110, value: 0xfa, size: 1)
        s.write(0x110, value: 0xfa, size: 1)
        s.write(0x110, value: 0xce, size: 1)          // datamatch miss reaches the device
        s.write(0x120, value: 0x1234, size: 2)        // wildcard, any width
        s.write(0x120, value: 7, size: 4)
        #expect(n.testAndClear() == 2)
        #expect(any.testAndClear() == 2)
        #expect(rec.all == ["w 16 1 0xce"])
        #expect(s.counters.eventfdSignals == 4)
        #expect(s.counters.eventfdSignals(of: n) == 2 && s.counters.eventfdSignals(of: any) == 2)
        #expect(MemoryTreeDump.ioeventfds(system).contains("0000000000000110 size=1 data=0xfa fd=\(n.fileDescriptor) userspace hits=2"))
        // An accelerator that takes them: writes that still arrive go to the device...
        s.acceleratorHandlesIoeventfds = true
        s.write(0x110, value: 0xfa, size: 1)
        #expect(n.testAndClear() == 0)
        // ...unless it refused that one.
        let abs = MemoryRegionIoeventfd(start: 0x110, size: 1, matchData: true, data: 0xfa, notifier: n)
        s.ioeventfdRefused(abs)
        s.write(0x110, value: 0xfa, size: 1)
        #expect(n.testAndClear() == 1)
        s.ioeventfdAccepted(abs)
        s.write(0x110, value: 0xfa, size: 1)
        #expect(n.testAndClear() == 0)
        #expect(dev.dispatchCounts.writes == 3)
    }
}
