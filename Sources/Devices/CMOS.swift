import Memory
import Synchronization
import VMMSys

/// The MC146818 real-time clock and its 128 bytes of CMOS RAM, index port 0x70 and data port
/// 0x71. The index's bit 7 (NMI disable) is ignored. The clock reads the host's UTC time
/// (plus whatever offset the guest set by writing the time registers), in BCD unless register
/// B's DM bit (2) selects binary, and in 24-hour mode unless its bit 1 is clear (then hours are
/// 1-12 with bit 7 for PM). Power-on state as QEMU: A = 0x26 (32.768 kHz, 1024 Hz, UIP never
/// set), B = 0x02 (24h, BCD), C = 0, D = 0x80 (battery good). Register C and D are read-only.
///
/// The alarm (seconds, minutes, hours at 0x01/0x03/0x05, a field with its two top bits set
/// matching any value): while register B's AIE is set the clock checks it each second; a match
/// sets register C's AF and IRQF, raises IRQ 8 (lowered when C is read), and asks the machine
/// to wake from S3 (`alarmWake`). Periodic and update-ended interrupts are not modelled. A
/// system reset clears PIE/AIE/SQWE in B and the flags in C, keeping the RAM and the time.
/// The memory-size bytes, CPU count and century are filled as QEMU's `pc_cmos_init` does.
/// QEMU: mc146818rtc (hw/rtc/mc146818rtc.c: check_alarm(), rtc_update_timer(), rtc_reset()).
public final class CMOS: Resettable, Sendable {
    /// Index (offset 0) and data (offset 1) ports; the machine maps it at 0x70.
    public let region: MemoryRegion
    /// The RTC's index port on the pc machine (data at 0x71). QEMU: RTC_ISA_BASE.
    public static let defaultBase: UInt64 = 0x70

    /// Register numbers. QEMU: include/hw/rtc/mc146818rtc_regs.h.
    public enum Register {
        /// The time-of-day registers (BCD or binary as register B says). QEMU: RTC_SECONDS...RTC_DAY_OF_WEEK.
        public static let seconds = 0x00, minutes = 0x02, hours = 0x04, dayOfWeek = 0x06
        /// The date registers. QEMU: RTC_DAY_OF_MONTH, RTC_MONTH, RTC_YEAR.
        public static let dayOfMonth = 0x07, month = 0x08, year = 0x09
        /// Status registers A-D. QEMU: RTC_REG_A...RTC_REG_D.
        public static let a = 0x0a, b = 0x0b, c = 0x0c, d = 0x0d
        /// The century byte (BCD), as the pc machine keeps it. QEMU: RTC_IBM_PS2_CENTURY_BYTE.
        public static let century = 0x32
        /// The alarm registers (a value with its two top bits set matches anything). QEMU: RTC_SECONDS_ALARM, RTC_MINUTES_ALARM, RTC_HOURS_ALARM.
        public static let secondsAlarm = 0x01, minutesAlarm = 0x03, hoursAlarm = 0x05
        /// The shutdown status byte firmware reads at reset (0xfe: resume from S3).
        public static let shutdownStatus = 0x0f
    }

    static let regBDM: UInt8 = 0x04, regB24h: UInt8 = 0x02, regAUIP: UInt8 = 0x80
    /// Register B's interrupt enables (periodic, alarm, update-ended) and square wave.
    static let regBPIE: UInt8 = 0x40, regBAIE: UInt8 = 0x20, regBUIE: UInt8 = 0x10, regBSQWE: UInt8 = 0x08
    /// Register C's flags: any enabled interrupt, periodic, alarm, update-ended.
    static let regCIRQF: UInt8 = 0x80, regCPF: UInt8 = 0x40, regCAF: UInt8 = 0x20, regCUF: UInt8 = 0x10

    struct State {
        var index = 0
        var data = [UInt8](repeating: 0, count: 128)
        /// Seconds added to the host clock (set when the guest writes the time).
        var offset: Int64 = 0
    }

    private let state: Mutex<State>
    private let now: @Sendable () -> Int64
    private let irq: IRQ
    /// Called on an alarm match with AIE set. QEMU: qemu_system_wakeup_request(QEMU_WAKEUP_REASON_RTC).
    private let alarmWake: @Sendable () -> Void
    /// Ticks once a second while AIE is set (none when the host refused a thread: no alarm).
    private let ticker: CharacterTimer?

    /// - Parameters:
    ///   - belowFourGiB: guest RAM below 4 GiB in bytes (QEMU `below_4g_mem_size`).
    ///   - aboveFourGiB: guest RAM mapped from 4 GiB up (QEMU `above_4g_mem_size`).
    ///   - cpus: boot CPUs (at least 1).
    ///   - irq: ISA IRQ 8.
    ///   - alarmWake: an alarm matched with AIE set (the machine wakes from S3).
    ///   - now: the host clock in seconds since the Unix epoch (UTC); tests inject their own.
    ///   - alarmTimer: whether a thread checks the alarm each second (tests call `tick()`).
    public init(belowFourGiB: UInt64, aboveFourGiB: UInt64 = 0, cpus: Int = 1, irq: IRQ = .disconnected(),
                alarmWake: @escaping @Sendable () -> Void = {},
                now: @escaping @Sendable () -> Int64 = { HostClock.realtime().seconds }, alarmTimer: Bool = true) {
        self.now = now
        self.irq = irq
        self.alarmWake = alarmWake
        ticker = alarmTimer ? CharacterTimer(clock: HostClock.monotonicNanoseconds, name: "rtc") : nil
        var s = State()
        s.data[Register.a] = 0x26
        s.data[Register.b] = CMOS.regB24h
        s.data[Register.d] = 0x80
        CMOS.fillMemorySize(&s.data, belowFourGiB: belowFourGiB, aboveFourGiB: aboveFourGiB, cpus: cpus)
        state = Mutex(s)
        let owner = RegionOwner<CMOS>()
        region = .io(name: "rtc", size: 2, ops: owner.ops(read: CMOS.read, write: CMOS.write, unbound: 0xff,
                                                          valid: .bytes, implementation: .bytes))
        owner.set(self)
        ticker?.setHandler { [weak self] in self?.tick() }
    }

    deinit { ticker?.stop() }

    /// A system reset: PIE, AIE and SQWE off, no flags pending, IRQ 8 low; RAM and time kept.
    /// QEMU: rtc_reset().
    public func reset() {
        state.withLock { s in
            s.data[Register.b] &= ~(CMOS.regBPIE | CMOS.regBAIE | CMOS.regBSQWE)
            s.data[Register.c] &= ~(CMOS.regCUF | CMOS.regCIRQF | CMOS.regCPF | CMOS.regCAF)
        }
        ticker?.arm(at: nil)
        irq.lower()
    }

    /// The once-a-second alarm check: on a match AF (and, with AIE, IRQF, IRQ 8 and a wake-up
    /// request). Keeps ticking while AIE is set. QEMU: rtc_update_timer(), check_alarm().
    func tick() {
        let (raise, wake, armed) = state.withLock { s -> (Bool, Bool, Bool) in
            let aie = s.data[Register.b] & CMOS.regBAIE != 0
            guard alarmMatches(s) else { return (false, false, aie) }
            let fresh = s.data[Register.c] & CMOS.regCAF == 0
            s.data[Register.c] |= CMOS.regCAF
            guard aie else { return (false, false, false) }
            if fresh { s.data[Register.c] |= CMOS.regCIRQF }
            return (fresh, true, true)
        }
        if raise { irq.raise() }
        if wake { alarmWake() }
        if armed { armTicker() }
    }

    /// Whether the time now matches the alarm (a field whose top two bits are set matches any
    /// value). QEMU: check_alarm().
    private func alarmMatches(_ s: State) -> Bool {
        let t = CivilTime(unix: now() &+ s.offset)
        let b = s.data[Register.b]
        func matches(_ index: Int, _ current: Int) -> Bool {
            let raw = s.data[index]
            if raw & 0xc0 == 0xc0 { return true }
            if index == Register.hoursAlarm && b & CMOS.regB24h == 0 {
                guard let h = decode(raw & 0x7f, b), (1...12).contains(h) else { return false }
                return h % 12 + (raw & 0x80 != 0 ? 12 : 0) == current
            }
            return decode(raw, b) == current
        }
        return matches(Register.secondsAlarm, t.second) && matches(Register.minutesAlarm, t.minute)
            && matches(Register.hoursAlarm, t.hour)
    }

    /// Schedules the next check at the next second boundary of the host clock.
    private func armTicker() {
        let ns = HostClock.monotonicNanoseconds()
        let wall = HostClock.realtime()
        let untilNextSecond = UInt64(max(0, 1_000_000_000 - wall.nanoseconds))
        ticker?.arm(at: ns &+ untilNextSecond)
    }

    /// Maps index/data at 0x70/0x71.
    public func map(into io: MemoryRegion, at base: UInt64 = CMOS.defaultBase) {
        io.addSubregion(region, at: base)
    }

    /// QEMU: the memory part of `pc_cmos_init` (hw/i386/pc.c).
    static func fillMemorySize(_ d: inout [UInt8], belowFourGiB: UInt64, aboveFourGiB: UInt64, cpus: Int) {
        let KiB: UInt64 = 1024, MiB: UInt64 = 1024 * 1024
        func put(_ at: Int, _ v: UInt64, bytes: Int) {
            for i in 0..<bytes { d[at + i] = UInt8(truncatingIfNeeded: v >> (8 * UInt64(i))) }
        }
        let base = min(belowFourGiB / KiB, 640)
        put(0x15, base, bytes: 2)
        var ext = belowFourGiB > MiB ? (belowFourGiB - MiB) / KiB : 0
        ext = min(ext, 65535)
        put(0x17, ext, bytes: 2)
        put(0x30, ext, bytes: 2)
        var high = belowFourGiB > 16 * MiB ? (belowFourGiB - 16 * MiB) / (64 * KiB) : 0
        high = min(high, 65535)
        put(0x34, high, bytes: 2)
        put(0x5b, aboveFourGiB / 65536, bytes: 3)
        d[0x5f] = UInt8(truncatingIfNeeded: max(cpus, 1) - 1)
    }

    /// A CMOS byte as the guest would read it (for the machine and tests).
    public func byte(at index: Int) -> UInt8 {
        guard (0..<128).contains(index) else { return 0 }
        return state.withLock { s in readData(&s, index) }
    }

    /// Sets a CMOS RAM byte (machine setup: boot order, equipment...). QEMU: `mc146818rtc_set_cmos_data`.
    public func setByte(_ value: UInt8, at index: Int) {
        guard (0..<128).contains(index) else { return }
        state.withLock { $0.data[index] = value }
    }

    // MARK: Guest interface

    func read(_ offset: UInt64, _ size: Int) -> UInt64 { UInt64(ioRead(offset)) }
    func write(_ offset: UInt64, _ value: UInt64, _ size: Int) { ioWrite(offset, UInt8(truncatingIfNeeded: value)) }

    func ioRead(_ offset: UInt64) -> UInt8 {
        let (value, lower) = state.withLock { s -> (UInt8, Bool) in
            guard offset != 0 else { return (0xff, false) }
            return (readData(&s, s.index), s.index == Register.c)
        }
        if lower { irq.lower() }   // reading C acknowledges. QEMU: cmos_ioport_read() (RTC_REG_C).
        return value
    }

    func ioWrite(_ offset: UInt64, _ value: UInt8) {
        let aie = state.withLock { s -> Bool? in
            if offset == 0 {
                s.index = Int(value & 0x7f)
                return nil
            }
            writeData(&s, s.index, value)
            return s.index == Register.b ? s.data[Register.b] & CMOS.regBAIE != 0 : nil
        }
        if let aie {
            if aie { armTicker() } else { ticker?.arm(at: nil) }
        }
    }

    private func readData(_ s: inout State, _ index: Int) -> UInt8 {
        switch index {
        case Register.seconds, Register.minutes, Register.hours, Register.dayOfWeek,
             Register.dayOfMonth, Register.month, Register.year, Register.century:
            let t = CivilTime(unix: now() &+ s.offset)
            let b = s.data[Register.b]
            switch index {
            case Register.seconds: return encode(t.second, b)
            case Register.minutes: return encode(t.minute, b)
            case Register.hours:
                if b & CMOS.regB24h != 0 { return encode(t.hour, b) }
                let h = t.hour % 12 == 0 ? 12 : t.hour % 12
                return encode(h, b) | (t.hour >= 12 ? 0x80 : 0)
            case Register.dayOfWeek: return encode(t.weekday + 1, b)
            case Register.dayOfMonth: return encode(t.day, b)
            case Register.month: return encode(t.month, b)
            case Register.year: return encode(t.year % 100, b)
            default: return encode(t.year / 100, b)
            }
        case Register.a:
            return s.data[Register.a] & ~CMOS.regAUIP
        case Register.c:
            let v = s.data[Register.c]
            s.data[Register.c] = 0
            return v
        default:
            return s.data[index & 0x7f]
        }
    }

    private func writeData(_ s: inout State, _ index: Int, _ value: UInt8) {
        switch index {
        case Register.seconds, Register.minutes, Register.hours, Register.dayOfWeek,
             Register.dayOfMonth, Register.month, Register.year, Register.century:
            setTimeField(&s, index, value)
        case Register.a:
            s.data[Register.a] = value & ~CMOS.regAUIP
        case Register.c, Register.d:
            break   // read-only
        default:
            s.data[index & 0x7f] = value
        }
    }

    /// The guest sets one field of the time: rebuild the date with it and keep the difference
    /// to the host clock. Values that do not decode are ignored.
    private func setTimeField(_ s: inout State, _ index: Int, _ raw: UInt8) {
        let b = s.data[Register.b]
        var t = CivilTime(unix: now() &+ s.offset)
        let pm = index == Register.hours && b & CMOS.regB24h == 0 && raw & 0x80 != 0
        guard var v = decode(index == Register.hours && b & CMOS.regB24h == 0 ? raw & 0x7f : raw, b) else { return }
        switch index {
        case Register.seconds: guard v < 60 else { return }; t.second = v
        case Register.minutes: guard v < 60 else { return }; t.minute = v
        case Register.hours:
            if b & CMOS.regB24h == 0 {
                guard (1...12).contains(v) else { return }
                v = v % 12 + (pm ? 12 : 0)
            }
            guard v < 24 else { return }
            t.hour = v
        case Register.dayOfWeek: return   // derived from the date
        case Register.dayOfMonth: guard (1...31).contains(v) else { return }; t.day = v
        case Register.month: guard (1...12).contains(v) else { return }; t.month = v
        case Register.year: t.year = t.year / 100 * 100 + v
        default: t.year = v * 100 + t.year % 100
        }
        s.offset = t.unix &- now()
    }

    private func encode<V: BinaryInteger>(_ value: V, _ regB: UInt8) -> UInt8 {
        let v = Int(truncatingIfNeeded: value)
        guard v >= 0 else { return 0 }
        if regB & CMOS.regBDM != 0 { return UInt8(truncatingIfNeeded: v) }
        return UInt8(truncatingIfNeeded: (v / 10 % 10) << 4 | v % 10)
    }

    private func decode(_ value: UInt8, _ regB: UInt8) -> Int? {
        if regB & CMOS.regBDM != 0 { return Int(value) }
        let hi = Int(value >> 4), lo = Int(value & 0x0f)
        guard hi < 10, lo < 10 else { return nil }
        return hi * 10 + lo
    }
}
