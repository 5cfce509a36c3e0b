import Synchronization
import TestSupport
import Testing
import VMMSys
@testable import Memory

/// QEMU's access rules (7.2): `memory_access_size()` splitting by the valid maximum and, unless
/// the implementation takes unaligned accesses (`impl.unaligned`), by alignment; then
/// `memory_region_access_valid()` refusing by the valid rules (`valid.unaligned` among them);
/// then `access_with_adjusted_size()` splitting/widening to implemented sizes.
@Suite struct DispatchTests {
    let system = MemorySystem()

    func space(_ ops: MemoryRegionOps, size: UInt128 = 0x100, at: UInt64 = 0) -> AddressSpace {
        let root = MemoryRegion.container(name: "root", size: UInt128(1) << 64)
        root.addSubregion(MemoryRegion.io(name: "dev", size: size, ops: ops), at: at)
        return AddressSpace(root: root, name: "t", system: system)
    }

    struct Case: Sendable, CustomStringConvertible {
        var validMax: Int, validMin: Int = 1, unaligned: Bool = false, implMin: Int, implMax: Int, implUnaligned: Bool = false
        var write: Bool, offset: UInt64, size: Int, value: UInt64 = 0
        var calls: [String], result: MemTxResult = .ok, readValue: UInt64? = nil
        var description: String {
            "\(write ? "w" : "r")\(size)@\(offset) valid \(validMin)-\(validMax)\(unaligned ? "u" : "") impl \(implMin)-\(implMax)\(implUnaligned ? "u" : "")"
        }
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
        // Valid for unaligned accesses, but the callbacks are not (impl.unaligned false):
        // memory_access_size() bounds each piece by its alignment, exactly as when neither is.
        Case(validMax: 4, unaligned: true, implMin: 1, implMax: 4, write: true, offset: 1, size: 4, value: 0xddccbbaa,
             calls: ["w 1 1 0xaa", "w 2 2 0xccbb", "w 4 1 0xdd"]),
        Case(validMax: 4, unaligned: true, implMin: 1, implMax: 4, write: false, offset: 3, size: 4,
             calls: ["r 3 1", "r 4 2", "r 6 1"], readValue: 0x16151413),
        // Both unaligned: one call.
        Case(validMax: 4, unaligned: true, implMin: 1, implMax: 4, implUnaligned: true, write: true, offset: 1, size: 4,
             value: 0xddccbbaa, calls: ["w 1 4 0xddccbbaa"]),
        Case(validMax: 8, unaligned: true, implMin: 1, implMax: 8, implUnaligned: true, write: false, offset: 3, size: 8,
             calls: ["r 3 8"], readValue: 0x1a19181716151413),
        // Callbacks take unaligned accesses but the valid rules do not: nothing splits the
        // access, and memory_region_access_valid() refuses it whole (a read yields 0).
        Case(validMax: 4, implMin: 1, implMax: 4, implUnaligned: true, write: true, offset: 1, size: 4, value: 0xddccbbaa,
             calls: [], result: .decodeError),
        Case(validMax: 4, implMin: 1, implMax: 4, implUnaligned: true, write: false, offset: 2, size: 4,
             calls: [], result: .decodeError, readValue: 0),
        // ...while aligned accesses pass.
        Case(validMax: 4, implMin: 1, implMax: 4, implUnaligned: true, write: false, offset: 4, size: 4,
             calls: ["r 4 4"], readValue: 0x17161514),
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
                          impl: AccessConstraints(minAccessSize: c.implMin, maxAccessSize: c.implMax, unaligned: c.implUnaligned))
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

    /// Every width, offset and constraint combination QEMU accepts whole (all but valid-aligned
    /// with impl-unaligned, which the table covers): calls stay within the implemented sizes
    /// and inside the access, pieces are aligned unless the implementation takes unaligned
    /// ones, and a write then read of the same bytes round-trips whenever nothing was widened.
    @Test func exhaustiveRoundTrip() {
        for validMax in [1, 2, 4, 8] {
            for (unaligned, implUnaligned) in [(false, false), (true, false), (true, true)] {
                for implMin in [1, 2, 4] {
                    for implMax in [1, 2, 4, 8] where implMax >= implMin {
                        for size in [1, 2, 4, 8] {
                            for offset in UInt64(0)..<8 {
                                let rec = AccessRecorder()
                                let s = space(rec.ops(valid: AccessConstraints(minAccessSize: 1, maxAccessSize: validMax, unaligned: unaligned),
                                                      impl: AccessConstraints(minAccessSize: implMin, maxAccessSize: implMax, unaligned: implUnaligned)))
                                let value: UInt64 = 0x8877_6655_4433_2211 & (size == 8 ? .max : (1 << (8 * UInt64(size))) - 1)
                                #expect(s.write(0x20 + offset, value: value, size: size) == .ok)
                                for call in rec.all {
                                    let parts = call.split(separator: " ")
                                    let o = UInt64(parts[1])!, n = Int(parts[2])!
                                    #expect(n >= implMin && n <= implMax || n == implMin)
                                    #expect(o >= 0x20 + offset && o < 0x20 + offset + UInt64(size))
                                    // Pieces from memory_access_size() are aligned unless impl
                                    // takes unaligned accesses (widening keeps the piece's offset).
                                    if !implUnaligned, implMin == 1 { #expect(o % UInt64(n) == 0, "\(call)") }
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

    /// Memory nobody claims reads 0 and drops writes, both with a decode error: QEMU 7.2's
    /// `io_mem_unassigned` has `unassigned_mem_ops`, whose `unassigned_mem_accepts()` refuses
    /// every access, so `memory_region_dispatch_read()` answers `unassigned_mem_read()` = 0
    /// and MEMTX_DECODE_ERROR. (Checked under qemu-system-x86_64 7.2 + KVM on the pc machine:
    /// 1-, 2- and 4-byte reads of 0xd0000000 and a 4-byte read of 0xd0000001 all give 0.)
    @Test func unassignedMemoryReadsZeroAndDropsWrites() {
        let s = space(AccessRecorder().ops(valid: .init(), impl: .init()), at: 0x1000)
        for (address, size) in [(UInt64(0x10), 4), (0x10, 1), (0x10, 2), (0x10, 8), (0x11, 4), (0x13, 8)] {
            let (v, r) = s.read(address, size: size)
            #expect(v == 0 && r == .decodeError, "\(size) bytes at \(hx(address))")
        }
        #expect(s.write(0x10, value: 1, size: 4) == .decodeError)
        #expect(s.counters.unassignedReads == 6 && s.counters.unassignedWrites == 1)
        // Straddling the device's start: the first two bytes are unassigned (0), the rest
        // decode; the whole access reports the decode error.
        let (v2, r2) = s.read(0xffe, size: 4)
        #expect(v2 == 0x1110_0000 && r2 == .decodeError)
        // Wrapping past the top of the address space is unassigned too, never a trap.
        #expect(s.read(UInt64.max, size: 8) == (0, .decodeError))
    }

    /// A region with QEMU's `unassigned_mem_ops` (what `memory_region_init_io()` with no ops
    /// gets) behaves like a hole: `accepts` refuses, the callbacks are never reached.
    @Test func unassignedOpsRefuseEverything() {
        let s = space(.unassigned, at: 0)
        #expect(s.read(0, size: 4) == (0, .decodeError))
        #expect(s.write(3, value: 7, size: 1) == .decodeError)
        #expect(s.counters.rejected == 2 && s.counters.unassignedReads == 0)
    }

    /// `valid.accepts` is asked first, with the piece's offset, size and direction.
    @Test func acceptsIsAskedBeforeTheSizeRules() {
        let rec = AccessRecorder()
        var ops = rec.ops(valid: .init(minAccessSize: 1, maxAccessSize: 4), impl: .init())
        ops.accepts = { offset, size, isWrite in offset != 4 && !(isWrite && size == 1) }
        let s = space(ops)
        #expect(s.read(4, size: 4) == (0, .decodeError))
        #expect(s.write(0, value: 1, size: 1) == .decodeError)
        #expect(s.read(0, size: 1).result == .ok)
        #expect(s.write(0, value: 0x0302, size: 2) == .ok)
        #expect(rec.all == ["r 0 1", "w 0 2 0x302"])
    }

    /// QEMU's "io" root is an I/O region over `unassigned_io_ops` (softmmu/ioport.c 7.2):
    /// ports nobody claims read all ones and take writes, with MEMTX_OK; split like any region
    /// with zeroed access fields (aligned pieces of at most 4 bytes). Under QEMU 7.2 + KVM,
    /// `inb/inw/inl` of port 0x1234 give 0xff/0xffff/0xffffffff, `inw 0x1235` 0xffff and
    /// `inl 0x1237` 0xffffffff.
    @Test func ioRootAnswersLikeQEMUs() {
        let root = MemoryRegion.ioRoot()
        let rec = AccessRecorder()
        root.addSubregion(MemoryRegion.io(name: "dev", size: 4, ops: rec.ops(valid: .bytes, impl: .bytes)), at: 0x60)
        let s = AddressSpace(root: root, name: "I/O", system: system)
        for (port, size, value) in [(UInt64(0x1234), 1, UInt64(0xff)), (0x1234, 2, 0xffff), (0x1234, 4, 0xffff_ffff),
                                    (0x1235, 2, 0xffff), (0x1237, 4, 0xffff_ffff), (0xfffe, 2, 0xffff)] {
            #expect(s.read(port, size: size) == (value, .ok), "in\(size) \(hx(port))")
        }
        #expect(s.write(0x1234, value: 5, size: 4) == .ok)
        // Straddling the device: the root's byte is ones, the device's its own (0x10 unwritten).
        #expect(s.read(0x5f, size: 2) == (0x10ff, .ok))
        #expect(rec.all == ["r 0 1"])
        #expect(s.counters.unassignedReads == 0 && s.counters.unassignedWrites == 0)
        // Past the root's 64 KiB there is nothing: memory's unassigned rules.
        #expect(s.read(0x10000, size: 2) == (0, .decodeError))
        // The flat view shows the root in the gaps, as QEMU's `info mtree -f` does.
        #expect(s.currentMap.ranges.map { "\($0.region.name)@\(hx($0.start))+\(hx(UInt64($0.size)))" }
                == ["io@0x0+0x60", "dev@0x60+0x4", "io@0x64+0xff9c"])
        #expect(s.currentMap.ranges[2].offsetInRegion == 0x64)
    }

    /// A device register is accessed at its full width even where a higher-priority region
    /// overlaps part of it: CONFIG_ADDRESS at 0xcf8 under the PIIX reset register at 0xcf9.
    /// The piece ends at the region's own end (deliberately: QEMU would hand the reset register
    /// all of a word written at 0xcf9). QEMU: address_space_translate_internal().
    @Test func deviceAccessIsNotCutWhereAnotherRegionOverlaps() {
        let root = MemoryRegion.ioRoot()
        let index = AccessRecorder(), reset = AccessRecorder()
        root.addSubregion(MemoryRegion.io(name: "pci-conf-idx", size: 4, ops: index.ops(valid: .init(), impl: .init())), at: 0xcf8)
        root.addSubregion(MemoryRegion.io(name: "reset", size: 1, ops: reset.ops(valid: .bytes, impl: .bytes)), at: 0xcf9, priority: 1)
        let s = AddressSpace(root: root, name: "I/O", system: system)
        s.write(0xcf8, value: 0x8000_1002, size: 4)
        s.write(0xcf9, value: 0x06, size: 1)
        _ = s.read(0xcf8, size: 4)
        s.write(0xcf9, value: 0x0e0e, size: 2)           // the reset register's byte, then 0xcfa
        s.write(0xcfa, value: 0xabcd, size: 2)
        #expect(index.all == ["w 0 4 0x80001002", "r 0 4", "w 2 1 0xe", "w 2 2 0xabcd"])
        #expect(reset.all == ["w 0 1 0x6", "w 0 1 0xe"])
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
        #expect(MemoryTreeDump.ioeventfds(system).contains("0000000000000110 size=1 data=0xfa fd=\(n.fileDescriptor.rawValue) userspace hits=2"))
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

/// Guest-chosen addresses and sizes at the edges: the top of the 64-bit space, sizes outside
/// 1...8, devices whose callbacks are wider than the access. Dispatch answers (ones, dropped
/// writes, decode errors) and never traps. QEMU: `flatview_read_continue()` /
/// `flatview_write_continue()`, `address_space_translate()` clamping to the section's end.
@Suite struct HostileDispatchTests {
    let system = MemorySystem()

    /// Ops over byte storage that wrap their own offsets (a region may end at 2^64).
    final class Bytes: Sendable {
        let calls = Mutex<[String]>([])
        var all: [String] { calls.withLock { $0 } }
        func ops(valid: AccessConstraints, impl: AccessConstraints, endianness: Endianness = .little) -> MemoryRegionOps {
            MemoryRegionOps(
                read: { [self] off, size in
                    calls.withLock { $0.append("r \(hx(off)) \(size)") }
                    var v: UInt64 = 0
                    for i in 0..<min(max(size, 0), 8) { v |= UInt64(UInt8(truncatingIfNeeded: off &+ UInt64(i))) << (8 * UInt64(i)) }
                    return v
                },
                write: { [self] off, value, size in calls.withLock { $0.append("w \(hx(off)) \(size) \(hx(value))") } },
                endianness: endianness, valid: valid, implementation: impl)
        }
    }

    func space(_ regions: [(MemoryRegion, UInt64)]) -> AddressSpace {
        let root = MemoryRegion.container(name: "root", size: UInt128(1) << 64)
        for (r, at) in regions { root.addSubregion(r, at: at) }
        return AddressSpace(root: root, name: "hostile", system: system)
    }

    @Test func deviceEndingAt2To64() {
        let dev = Bytes()
        let s = space([(MemoryRegion.io(name: "top", size: 0x10, ops: dev.ops(valid: .init(minAccessSize: 1, maxAccessSize: 8),
                                                                          impl: .init(minAccessSize: 1, maxAccessSize: 8))), UInt64.max - 0xf)])
        let (v, r) = s.read(UInt64.max, size: 8)
        #expect(v == 0x0f)                                  // the device's byte at offset 0xf, then unassigned 0s
        #expect(r == .decodeError)
        #expect(s.write(UInt64.max, value: 0x1122_3344_5566_7788, size: 8) == .decodeError)
        #expect(s.write(UInt64.max - 1, value: 0xaabb, size: 2) == .ok)
        #expect(dev.all == ["r 0xf 1", "w 0xf 1 0x88", "w 0xe 2 0xaabb"])
        #expect(s.counters.unassignedReads == 1 && s.counters.unassignedWrites == 1)
    }

    @Test func ramEndingAt2To64() throws {
        let ram = try MemoryRegion.ram(name: "top-ram", size: 0x1000)
        let s = space([(ram, UInt64.max - 0xfff)])
        #expect(s.write(UInt64.max - 3, value: 0x1122_3344_5566_7788, size: 8) == .decodeError)
        let (v, r) = s.read(UInt64.max - 3, size: 8)
        #expect(v == 0x5566_7788 && r == .decodeError)
        #expect(try s.guestMemory.read(at: UInt64.max - 3, count: 4) == [0x88, 0x77, 0x66, 0x55])
        #expect(throws: GuestMemoryError.self) { try s.guestMemory.read(at: UInt64.max - 3, count: 5) }
    }

    @Test(arguments: [0, -1, 9, 16, Int.max, Int.min])
    func sizesOutsideOneToEight(_ size: Int) {
        let dev = Bytes()
        let s = space([(MemoryRegion.io(name: "d", size: 0x100, ops: dev.ops(valid: .init(), impl: .init())), 0)])
        #expect(s.read(0, size: size) == (UInt64.max, .decodeError))
        #expect(s.write(0, value: 1, size: size) == .decodeError)
        #expect(s.read(UInt64.max, size: size).result == .decodeError)
        #expect(dev.all.isEmpty)
    }

    /// A device implementing only 8-byte accesses at the top of the space: a 1-byte access at
    /// the last address is widened at an offset that wraps; big-endian too.
    @Test(arguments: [Endianness.little, .big])
    func widenedAccessAtTheTop(_ endianness: Endianness) {
        let dev = Bytes()
        let s = space([(MemoryRegion.io(name: "w", size: 0x10, ops: dev.ops(valid: .init(minAccessSize: 1, maxAccessSize: 8, unaligned: true),
                                                                        impl: .init(minAccessSize: 8, maxAccessSize: 8),
                                                                        endianness: endianness)), UInt64.max - 0xf)])
        #expect(s.read(UInt64.max, size: 1).result == .ok)
        #expect(s.write(UInt64.max, value: 0x5a, size: 1) == .ok)
        #expect(s.read(UInt64.max - 2, size: 3).result == .ok)
        // The 3-byte read is split (2 + 1) by the valid rules, then each piece widened to 8.
        #expect(dev.all.count == 4 && dev.all.allSatisfy { $0.hasSuffix(" 8") || $0.contains(" 8 ") }, "\(dev.all)")
    }

    /// Seeded random accesses, biased to edges, over RAM, ROM and devices of every constraint
    /// kind: reads of unassigned bytes are 0, nothing traps.
    @Test func randomEdgeAccessesNeverTrap() throws {
        var rng = SeededGenerator(seed: 0x5eed_d15b)
        let ram = try MemoryRegion.ram(name: "ram", size: 0x2000)
        let rom = try MemoryRegion.rom(name: "rom", size: 0x1000)
        let dev = Bytes()
        var regions: [(MemoryRegion, UInt64)] = [(ram, 0), (rom, 0x3000), (ram.aliasOfTop(), UInt64.max - 0x7ff)]
        let constraints: [(AccessConstraints, AccessConstraints, Endianness)] = [
            (.init(minAccessSize: 1, maxAccessSize: 4), .init(minAccessSize: 1, maxAccessSize: 4), .little),
            (.init(minAccessSize: 4, maxAccessSize: 8), .init(minAccessSize: 4, maxAccessSize: 8), .big),
            (.init(minAccessSize: 1, maxAccessSize: 8, unaligned: true), .init(minAccessSize: 4, maxAccessSize: 4), .little),
            (.init(minAccessSize: 1, maxAccessSize: 0), .init(minAccessSize: 0, maxAccessSize: 0), .big),
            (.init(minAccessSize: 2, maxAccessSize: 2), .init(minAccessSize: 1, maxAccessSize: 1), .little),
        ]
        for (i, c) in constraints.enumerated() {
            regions.append((MemoryRegion.io(name: "dev\(i)", size: 0x13, ops: dev.ops(valid: c.0, impl: c.1, endianness: c.2)),
                            0x10000 + UInt64(i) * 0x20))
        }
        regions.append((MemoryRegion.io(name: "top", size: 0x13, ops: dev.ops(valid: constraints[2].0, impl: constraints[2].1)),
                        UInt64.max - 0x12))
        let s = space(regions)
        let edges: [UInt64] = [0, 0x1ffd, 0x2000, 0x2ffe, 0x3000, 0x3ffd, 0x10000, 0x10011, 0x10020, 0x10093,
                               UInt64.max - 0x7ff, UInt64.max - 0x13, UInt64.max - 0x12, UInt64.max - 3, UInt64.max]
        for _ in 0..<20_000 {
            let base = edges.randomElement(using: &rng)!
            let address = Bool.random(using: &rng) ? base &+ UInt64.random(in: 0...9, using: &rng)
                                                    : base &- UInt64.random(in: 0...9, using: &rng)
            let size = Int.random(in: -1...10, using: &rng)
            if Bool.random(using: &rng) {
                _ = s.write(address, value: rng.next(), size: size)
            } else {
                let (v, r) = s.read(address, size: size)
                if size < 1 || size > 8 { #expect(v == .max && r == .decodeError) }
            }
        }
        #expect(s.read(0x8000, size: 8) == (0, .decodeError))
    }
}

private extension MemoryRegion {
    /// A second window on the same RAM, for mapping it at the top of the space.
    func aliasOfTop() -> MemoryRegion { MemoryRegion.alias(name: "\(name)-top", target: self, offset: 0, size: 0x800) }
}
