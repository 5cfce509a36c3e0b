import Foundation
import Memory
import Synchronization
import TestSupport
import Testing
@testable import Devices

@Suite struct ISADebugExitTests {
    @Test func writeExitsWithShiftedStatus() {
        let bus = TestBus()
        let statuses = Mutex<[Int32]>([])
        let dev = ISADebugExit(iobase: 0xf4, iosize: 4) { s in statuses.withLock { $0.append(s) } }
        dev.map(into: bus.io)
        bus.outb(0xf4, 0)
        bus.outb(0xf4, 1)
        bus.outw(0xf4, 0x21)
        bus.outl(0xf4, 0x7f)
        bus.outb(0xf7, 3)              // anywhere in the range
        #expect(statuses.withLock { $0 } == [1, 3, 0x43, 0xff, 7])
        #expect(bus.inb(0xf4) == 0)
        #expect(ISADebugExit.status(for: 0xffff_ffff) == -1)   // wraps like C, no trap
        #expect(dev.region.size == 4)
    }

    @Test func qemuDefaultPlacement() {
        let dev = ISADebugExit { _ in }
        #expect(dev.iobase == 0x501 && dev.iosize == 2)
    }
}

@Suite struct FwCfgTests {
    let bus = TestBus()
    let fw = FwCfg(ramSize: 128 << 20, cpus: 2, maxCPUs: 4)

    init() { fw.map(into: bus.io) }

    func readItem(_ key: UInt16, _ count: Int) -> [UInt8] {
        bus.outw(0x510, UInt64(key))
        return (0..<count).map { _ in bus.inb(0x511) }
    }

    @Test func signatureAndFeatures() {
        #expect(readItem(0x0000, 4) == Array("QEMU".utf8))
        #expect(readItem(0x0001, 4) == [1, 0, 0, 0])
    }

    @Test func ramSizeAndCPUs() {
        #expect(readItem(0x0003, 8) == [0, 0, 0, 8, 0, 0, 0, 0])
        #expect(readItem(0x0005, 2) == [2, 0])
        #expect(readItem(0x000f, 2) == [4, 0])
    }

    @Test func readsPastEndAndUnknownKeysAreZero() {
        #expect(readItem(0x0000, 6) == Array("QEMU".utf8) + [0, 0])
        #expect(readItem(0x1234, 4) == [0, 0, 0, 0])
        // Reselecting rewinds.
        #expect(readItem(0x0000, 2) == Array("QE".utf8))
        // Byte writes to the data port and the selector port do not select.
        bus.outb(0x511, 0x05)
        bus.outb(0x510, 0x05)
        #expect(bus.inb(0x511) == UInt8(ascii: "M"))
    }

    @Test func fileDirectory() throws {
        #expect(readItem(0x0019, 4) == [0, 0, 0, 0])
        try fw.addFile(name: "etc/zeta", data: [1, 2, 3])
        try fw.addFile(name: "etc/alpha", data: Array(repeating: 9, count: 0x1234))
        let dir = readItem(0x0019, 4 + 2 * 64)
        #expect(dir[0..<4] == [0, 0, 0, 2])
        // Sorted by name: alpha gets 0x20, zeta moves to 0x21.
        #expect(Array(dir[4..<12]) == [0, 0, 0x12, 0x34, 0x00, 0x20, 0, 0])
        #expect(Array(dir[12..<21]) == Array("etc/alpha".utf8))
        #expect(dir[21..<68].allSatisfy { $0 == 0 })
        #expect(Array(dir[68..<76]) == [0, 0, 0, 3, 0x00, 0x21, 0, 0])
        #expect(Array(dir[76..<84]) == Array("etc/zeta".utf8))
        #expect(readItem(0x0021, 4) == [1, 2, 3, 0])
        #expect(fw.selector(forFile: "etc/zeta") == 0x21)
        #expect(throws: FwCfgError.self) { try fw.addFile(name: String(repeating: "x", count: 56), data: []) }
    }

    @Test func kernelItems() {
        fw.setCommandLine("console=ttyS0", address: 0x20000)
        #expect(readItem(FwCfg.Key.cmdlineSize, 4) == [14, 0, 0, 0])
        #expect(readItem(FwCfg.Key.cmdlineData, 14) == Array("console=ttyS0".utf8) + [0])
    }
}

@Suite struct CMOSTests {
    // 2024-02-29 13:45:07 UTC, a Thursday.
    static let when: Int64 = 1_709_214_307

    func cmos(_ below: UInt64, _ above: UInt64 = 0, cpus: Int = 1) -> (CMOS, TestBus) {
        let bus = TestBus()
        let c = CMOS(belowFourGiB: below, aboveFourGiB: above, cpus: cpus, now: { CMOSTests.when })
        c.map(into: bus.io)
        return (c, bus)
    }

    func read(_ bus: TestBus, _ index: UInt64) -> UInt8 {
        bus.outb(0x70, index)
        return bus.inb(0x71)
    }

    @Test func memorySize128MiB() {
        let (_, bus) = cmos(128 << 20, cpus: 4)
        #expect(read(bus, 0x15) == 0x80 && read(bus, 0x16) == 0x02)        // 640
        #expect(read(bus, 0x17) == 0xff && read(bus, 0x18) == 0xff)        // 127 MiB in KiB, capped
        #expect(read(bus, 0x30) == 0xff && read(bus, 0x31) == 0xff)
        #expect(read(bus, 0x34) == 0x00 && read(bus, 0x35) == 0x07)        // 112 MiB / 64 KiB = 0x700
        #expect(read(bus, 0x5b) == 0 && read(bus, 0x5c) == 0 && read(bus, 0x5d) == 0)
        #expect(read(bus, 0x5f) == 3)
    }

    @Test func memorySize32MiB() {
        let (_, bus) = cmos(32 << 20)
        #expect(read(bus, 0x17) == 0x00 && read(bus, 0x18) == 0x7c)        // 31 MiB = 0x7c00 KiB
        #expect(read(bus, 0x30) == 0x00 && read(bus, 0x31) == 0x7c)
        #expect(read(bus, 0x34) == 0x00 && read(bus, 0x35) == 0x01)        // 16 MiB / 64 KiB
    }

    @Test func memorySize3GiBPlus1GiBHigh() {
        let (_, bus) = cmos(3 << 30, 1 << 30)
        #expect(read(bus, 0x17) == 0xff && read(bus, 0x18) == 0xff)        // capped
        #expect(read(bus, 0x30) == 0xff && read(bus, 0x31) == 0xff)
        #expect(read(bus, 0x34) == 0x00 && read(bus, 0x35) == 0xbf)        // (3G-16M)/64K = 0xbf00
        #expect(read(bus, 0x5b) == 0x00 && read(bus, 0x5c) == 0x40 && read(bus, 0x5d) == 0x00) // 0x4000
        #expect(read(bus, 0x5f) == 0)
    }

    @Test func statusRegistersAsQEMU() {
        let (_, bus) = cmos(128 << 20)
        #expect(read(bus, 0x0a) == 0x26)
        #expect(read(bus, 0x0b) == 0x02)
        #expect(read(bus, 0x0c) == 0x00)
        #expect(read(bus, 0x0d) == 0x80)
        #expect(read(bus, 0x8d) == 0x80)     // NMI-disable bit ignored
        bus.outb(0x70, 0x0d); bus.outb(0x71, 0)
        #expect(read(bus, 0x0d) == 0x80)     // read-only
    }

    @Test func bcdTime() {
        let (_, bus) = cmos(128 << 20)
        #expect(read(bus, 0x00) == 0x07)
        #expect(read(bus, 0x02) == 0x45)
        #expect(read(bus, 0x04) == 0x13)
        #expect(read(bus, 0x06) == 0x05)     // Thursday = 5 (Sunday = 1)
        #expect(read(bus, 0x07) == 0x29)
        #expect(read(bus, 0x08) == 0x02)
        #expect(read(bus, 0x09) == 0x24)
        #expect(read(bus, 0x32) == 0x20)
    }

    @Test func binaryAnd12HourModes() {
        let (_, bus) = cmos(128 << 20)
        bus.outb(0x70, 0x0b); bus.outb(0x71, 0x04)   // binary, 12h
        #expect(read(bus, 0x02) == 45)
        #expect(read(bus, 0x04) == 0x80 | 1)        // 1 PM
        #expect(read(bus, 0x09) == 24)
    }

    @Test func guestSetsTimeAsOffset() {
        let (_, bus) = cmos(128 << 20)
        bus.outb(0x70, 0x09); bus.outb(0x71, 0x30)   // year 2030
        #expect(read(bus, 0x09) == 0x30)
        #expect(read(bus, 0x08) == 0x03)             // Feb 29 2030 normalises to Mar 1
        bus.outb(0x70, 0x04); bus.outb(0x71, 0xff)   // invalid BCD: ignored, no trap
        #expect(read(bus, 0x04) == 0x13)
    }

    @Test func hostClockIsPlausibleBCD() {
        let bus = TestBus()
        CMOS(belowFourGiB: 1 << 30).map(into: bus.io)
        for index: UInt64 in [0, 2, 4, 6, 7, 8, 9, 0x32] {
            let v = read(bus, index)
            #expect(v >> 4 < 10 && v & 0xf < 10)
        }
        #expect(read(bus, 0x32) >= 0x20)
        #expect(read(bus, 0x04) < 0x24)
    }

    @Test func nvramBytes() {
        let (_, bus) = cmos(128 << 20)
        bus.outb(0x70, 0x40); bus.outb(0x71, 0x5a)
        #expect(read(bus, 0x40) == 0x5a)
        #expect(read(bus, 0x7f) == 0)
    }
}

@Suite struct ACPIPMTimerTests {
    @Test func counterIs24BitAtPMFrequency() {
        let clock = TestClock()
        let bus = TestBus()
        let t = ACPIPMTimer { clock.ns.withLock { $0 } }
        t.map(into: bus.io)
        #expect(bus.inl(0x608) == 0)
        clock.ns.withLock { $0 = 1_000_000_000 }
        #expect(bus.inl(0x608) == 3_579_545)
        clock.ns.withLock { $0 = 5_000_000_000 }    // 17897725 wraps at 2^24
        #expect(bus.inl(0x608) == 17_897_725 & 0xff_ffff)
        clock.ns.withLock { $0 = .max }             // no overflow trap
        #expect(bus.inl(0x608) <= 0xff_ffff)
        #expect(bus.ioSpace.read(0x608, size: 1).result == .decodeError)   // only dwords
    }

    /// On the host clock the counter moves forward, and never ahead of CLOCK_MONOTONIC read
    /// around it: every value read lies between the counts of the clock readings that bracket
    /// it (an oracle, not a time bound; the polling for a change is only hang-guarded).
    @Test func hostClockAdvances() {
        let bus = TestBus()
        ACPIPMTimer().map(into: bus.io)
        let t0 = ACPIPMTimer.monotonicNanoseconds()
        let a = bus.inl(0x608)
        var b = a
        let guardTime = t0 &+ 60_000_000_000
        while b == a && ACPIPMTimer.monotonicNanoseconds() < guardTime { b = bus.inl(0x608) }
        let t1 = ACPIPMTimer.monotonicNanoseconds()
        #expect(a <= 0xff_ffff && b <= 0xff_ffff)
        #expect(b != a)
        let c0 = ACPIPMTimer.counter(atNanoseconds: t0), c1 = ACPIPMTimer.counter(atNanoseconds: t1)
        // Within 4 s the 24-bit count (wrapping every ~4.7 s) orders unambiguously.
        if t1 - t0 < 4_000_000_000 {
            let span = (c1 &- c0) & 0xff_ffff
            let fromA = (a &- c0) & 0xff_ffff, fromB = (b &- c0) & 0xff_ffff
            #expect(fromA <= fromB && fromB <= span, "c0 \(c0) a \(a) b \(b) c1 \(c1)")
        }
    }
}

@Suite struct PCTestDevTests {
    let bus = TestBus()
    let lines: [IRQRecorder] = (0..<24).map { _ in IRQRecorder() }
    let dev: PCTestDev

    init() {
        let recorder = FlushRecorder()
        flushRecorder = recorder
        dev = PCTestDev(irqLines: lines.map(\.irq), flushPage: { recorder.add($0) })
        dev.map(into: bus.io, memory: bus.memory)
    }
    let flushRecorder: FlushRecorder

    @Test func scratchAtEveryWidthAndOffset() {
        bus.outl(0xe0, 0x1122_3344)
        #expect(bus.inl(0xe0) == 0x1122_3344)
        #expect(bus.inb(0xe0) == 0x44 && bus.inb(0xe1) == 0x33 && bus.inb(0xe2) == 0x22 && bus.inb(0xe3) == 0x11)
        #expect(bus.inw(0xe0) == 0x3344 && bus.inw(0xe2) == 0x1122)
        #expect(bus.inw(0xe1) == 0x2233)   // unaligned: split by the core
        bus.outb(0xe2, 0xaa)
        #expect(bus.inl(0xe0) == 0x11aa_3344)
        bus.outw(0xe1, 0xbbcc)
        #expect(bus.inl(0xe0) == 0x11bb_cc44)
        bus.outw(0xe2, 0xddee)
        #expect(bus.inl(0xe0) == 0xddee_cc44)
        #expect(dev.scratchValue == 0xddee_cc44)
    }

    @Test func byteImplementedRegisterIsSplit() {
        let before = dev.byteRegisterCalls
        bus.outl(0xe8, 0xcafe_f00d)
        #expect(dev.byteRegisterCalls - before == 4)
        #expect(bus.inl(0xe8) == 0xcafe_f00d)
        #expect(dev.byteRegisterCalls - before == 8)
        #expect(bus.inw(0xea) == 0xcafe)
        #expect(dev.byteRegisterCalls - before == 10)
        #expect(bus.inl(0xe0) == 0xcafe_f00d)        // same register as 0xe0
    }

    @Test func flushPageTakesDwordsOnly() {
        bus.outl(0xe4, 0x0012_3456)
        bus.outb(0xe4, 0x77)                         // refused
        #expect(flushRecorder.pages == [0x0012_3000])
    }

    @Test func irqLines() {
        bus.outb(0x2000 + 4, 1)
        bus.outb(0x2000 + 23, 0x80)
        bus.outb(0x2000 + 4, 0)
        #expect(lines[4].history == [true, false])
        #expect(lines[23].history == [true])
        #expect(lines[0].history.isEmpty)
        // A device with fewer lines ignores the rest safely.
        let b2 = TestBus()
        let few = IRQRecorder()
        PCTestDev(irqLines: [few.irq]).map(into: b2.io, memory: b2.memory)
        b2.outb(0x2000 + 5, 1)
        b2.outb(0x2000, 1)
        #expect(few.history == [true])
        #expect(b2.inb(0x2000) == 0)
    }

    @Test func mmioScratch() {
        let m = bus.memorySpace
        m.write(0xff00_0000, value: 0xdead_beef, size: 4)
        #expect(m.read(0xff00_0000, size: 4).value == 0xdead_beef)
        #expect(m.read(0xff00_0002, size: 2).value == 0xdead)
        m.write(0xff00_fffc, value: 0x0102_0304, size: 4)
        #expect(m.read(0xff00_ffff, size: 1).value == 0x01)
        m.write(0xff00_8001, value: 0x55, size: 1)
        #expect(m.read(0xff00_8000, size: 4).value == 0x5500)
        m.write(0xff00_1000, value: 0x0102_0304_0506_0708, size: 8)   // split in two dwords
        #expect(m.read(0xff00_1000, size: 8).value == 0x0102_0304_0506_0708)
        #expect(m.read(0xff01_0000, size: 1).result == .decodeError)  // past the end: unassigned
        #expect(dev.iomemRegion.isRAM == false)
    }
}

final class FlushRecorder: Sendable {
    private let list = Mutex<[UInt64]>([])
    func add(_ p: UInt64) { list.withLock { $0.append(p) } }
    var pages: [UInt64] { list.withLock { $0 } }
}

final class TestClock: Sendable { let ns = Mutex<UInt64>(0) }

/// The RTC alarm: checked once a second while AIE is set (tests call `tick()` with their own
/// clock); a match sets AF and IRQF, raises IRQ 8 until register C is read, and asks for a
/// wake-up; fields with their top two bits set match anything; a reset clears AIE and the flags.
/// QEMU: check_alarm(), rtc_update_timer(), cmos_ioport_read() (RTC_REG_C), rtc_reset().
@Suite struct RTCAlarmTests {
    final class Clock: Sendable {
        let seconds = Atomic<Int64>(CMOSTests.when)     // 13:45:07
        func advance(_ s: Int64) { seconds.add(s, ordering: .relaxed) }
    }
    final class Counter: Sendable {
        let count = Atomic<Int>(0)
        var value: Int { count.load(ordering: .relaxed) }
    }

    func rtc() -> (CMOS, TestBus, IRQRecorder, Clock, Counter) {
        let clock = Clock(), irq = IRQRecorder(), wakes = Counter()
        let bus = TestBus()
        let c = CMOS(belowFourGiB: 128 << 20, irq: irq.irq, alarmWake: { wakes.count.add(1, ordering: .relaxed) },
                     now: { clock.seconds.load(ordering: .relaxed) }, alarmTimer: false)
        c.map(into: bus.io)
        return (c, bus, irq, clock, wakes)
    }

    func write(_ bus: TestBus, _ index: UInt64, _ value: UInt64) { bus.outb(0x70, index); bus.outb(0x71, value) }
    func read(_ bus: TestBus, _ index: UInt64) -> UInt8 { bus.outb(0x70, index); return bus.inb(0x71) }

    @Test func alarmRaisesIRQ8AndWakes() {
        let (c, bus, irq, clock, wakes) = rtc()
        write(bus, 0x01, 0x09); write(bus, 0x03, 0x45); write(bus, 0x05, 0x13)   // 13:45:09 (BCD)
        write(bus, 0x0b, 0x02 | 0x20)                                             // AIE
        c.tick()
        #expect(irq.raises == 0 && read(bus, 0x0c) == 0)                          // 13:45:07: no match
        clock.advance(2)
        c.tick()
        #expect(irq.level && wakes.value == 1)
        #expect(read(bus, 0x0c) == 0xa0)                                          // IRQF | AF
        #expect(!irq.level && read(bus, 0x0c) == 0)                               // read clears, lowers
        clock.advance(1)
        c.tick()
        #expect(irq.raises == 1 && wakes.value == 1)
    }

    @Test func dontCareFieldsAnd12HourAlarm() {
        let (c, bus, irq, clock, _) = rtc()
        write(bus, 0x0b, 0x04 | 0x20)                                             // binary, 12h, AIE
        write(bus, 0x01, 0xc0); write(bus, 0x03, 46); write(bus, 0x05, 0x80 | 1)  // any second of 1:46 PM
        c.tick()
        #expect(irq.raises == 0)
        clock.advance(60)
        c.tick()
        #expect(irq.raises == 1)
        write(bus, 0x05, 1)                                                       // 1:46 AM: no match
        _ = read(bus, 0x0c)
        clock.advance(1)
        c.tick()
        #expect(irq.raises == 1)
    }

    @Test func withoutAIEOnlyAFAndResetClears() {
        let (c, bus, irq, _, wakes) = rtc()
        write(bus, 0x01, 0xff); write(bus, 0x03, 0xff); write(bus, 0x05, 0xff)
        c.tick()
        #expect(read(bus, 0x0c) == 0x20 && irq.raises == 0 && wakes.value == 0)
        write(bus, 0x0b, 0x02 | 0x40 | 0x20 | 0x08)
        c.tick()
        #expect(irq.level)
        c.reset()
        #expect(!irq.level && read(bus, 0x0b) == 0x02 && read(bus, 0x0c) == 0)
        #expect(read(bus, 0x01) == 0xff, "CMOS RAM kept")
    }
}

/// Calendar arithmetic without C time functions, against Foundation's Gregorian calendar.
@Suite struct CivilTimeTests {
    static let instants: [Int64] = [0, 951_782_400, 1_709_214_307, -1, -86_400 * 365 * 70, 4_102_444_799, 253_402_300_799, 68_169_600]

    @Test(arguments: instants)
    func matchesFoundation(_ seconds: Int64) {
        var calendar = Calendar(identifier: .gregorian)
        calendar.timeZone = TimeZone(identifier: "UTC")!
        let d = calendar.dateComponents([.year, .month, .day, .hour, .minute, .second, .weekday],
                                        from: Date(timeIntervalSince1970: TimeInterval(seconds)))
        let t = CivilTime(unix: seconds)
        #expect([t.year, t.month, t.day, t.hour, t.minute, t.second] == [d.year, d.month, d.day, d.hour, d.minute, d.second].map { $0! })
        #expect(t.weekday + 1 == d.weekday)
        #expect(t.unix == seconds)
    }

    @Test func fieldsRollOver() {
        #expect(CivilTime(year: 2030, month: 2, day: 29, hour: 0, minute: 0, second: 0).unix
                == CivilTime(year: 2030, month: 3, day: 1, hour: 0, minute: 0, second: 0).unix)
        #expect(CivilTime(unix: Int64.max).year > 1_000_000 && CivilTime(unix: Int64.min).year < -1_000_000)   // clamped, no trap
    }
}
