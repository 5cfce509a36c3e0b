import Memory
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// The MC146818 real-time clock and its 128 bytes of CMOS RAM, index port 0x70 and data port
/// 0x71. The index's bit 7 (NMI disable) is ignored. The clock reads the host's UTC time
/// (plus whatever offset the guest set by writing the time registers), in BCD unless register
/// B's DM bit (2) selects binary, and in 24-hour mode unless its bit 1 is clear (then hours are
/// 1-12 with bit 7 for PM). Reset state as QEMU: A = 0x26 (32.768 kHz, 1024 Hz, UIP never
/// set), B = 0x02 (24h, BCD), C = 0, D = 0x80 (battery good). Register C and D are read-only;
/// periodic, alarm and update interrupts are not modelled. The memory-size bytes, CPU count
/// and century are filled as QEMU's `pc_cmos_init` does. QEMU: mc146818rtc (hw/rtc/mc146818rtc.c).
public final class CMOS: Sendable {
    /// Index (offset 0) and data (offset 1) ports; the machine maps it at 0x70.
    public let region: MemoryRegion
    public static let defaultBase: UInt64 = 0x70

    /// Register numbers. QEMU: include/hw/rtc/mc146818rtc_regs.h.
    public enum Register {
        public static let seconds = 0x00, minutes = 0x02, hours = 0x04, dayOfWeek = 0x06
        public static let dayOfMonth = 0x07, month = 0x08, year = 0x09
        public static let a = 0x0a, b = 0x0b, c = 0x0c, d = 0x0d
        public static let century = 0x32
    }

    static let regBDM: UInt8 = 0x04, regB24h: UInt8 = 0x02, regAUIP: UInt8 = 0x80

    struct State {
        var index = 0
        var data = [UInt8](repeating: 0, count: 128)
        /// Seconds added to the host clock (set when the guest writes the time).
        var offset: Int64 = 0
    }

    private let state: Mutex<State>
    private let now: @Sendable () -> Int64

    /// - Parameters:
    ///   - belowFourGiB: guest RAM below 4 GiB in bytes (QEMU `below_4g_mem_size`).
    ///   - aboveFourGiB: guest RAM mapped from 4 GiB up (QEMU `above_4g_mem_size`).
    ///   - cpus: boot CPUs (at least 1).
    ///   - now: the host clock in seconds since the Unix epoch (UTC); tests inject their own.
    public init(belowFourGiB: UInt64, aboveFourGiB: UInt64 = 0, cpus: Int = 1,
                now: @escaping @Sendable () -> Int64 = { Int64(time(nil)) }) {
        self.now = now
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
        state.withLock { s in
            offset == 0 ? 0xff : readData(&s, s.index)
        }
    }

    func ioWrite(_ offset: UInt64, _ value: UInt8) {
        state.withLock { s in
            if offset == 0 {
                s.index = Int(value & 0x7f)
            } else {
                writeData(&s, s.index, value)
            }
        }
    }

    private func readData(_ s: inout State, _ index: Int) -> UInt8 {
        switch index {
        case Register.seconds, Register.minutes, Register.hours, Register.dayOfWeek,
             Register.dayOfMonth, Register.month, Register.year, Register.century:
            let t = brokenDown(s)
            let b = s.data[Register.b]
            switch index {
            case Register.seconds: return encode(t.tm_sec, b)
            case Register.minutes: return encode(t.tm_min, b)
            case Register.hours:
                if b & CMOS.regB24h != 0 { return encode(t.tm_hour, b) }
                let h = t.tm_hour % 12 == 0 ? 12 : t.tm_hour % 12
                return encode(h, b) | (t.tm_hour >= 12 ? 0x80 : 0)
            case Register.dayOfWeek: return encode(t.tm_wday + 1, b)
            case Register.dayOfMonth: return encode(t.tm_mday, b)
            case Register.month: return encode(t.tm_mon + 1, b)
            case Register.year: return encode((Int(t.tm_year) + 1900) % 100, b)
            default: return encode((Int(t.tm_year) + 1900) / 100, b)
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
        var t = brokenDown(s)
        let pm = index == Register.hours && b & CMOS.regB24h == 0 && raw & 0x80 != 0
        guard var v = decode(index == Register.hours && b & CMOS.regB24h == 0 ? raw & 0x7f : raw, b) else { return }
        switch index {
        case Register.seconds: guard v < 60 else { return }; t.tm_sec = Int32(v)
        case Register.minutes: guard v < 60 else { return }; t.tm_min = Int32(v)
        case Register.hours:
            if b & CMOS.regB24h == 0 {
                guard (1...12).contains(v) else { return }
                v = v % 12 + (pm ? 12 : 0)
            }
            guard v < 24 else { return }
            t.tm_hour = Int32(v)
        case Register.dayOfWeek: return   // derived from the date
        case Register.dayOfMonth: guard (1...31).contains(v) else { return }; t.tm_mday = Int32(v)
        case Register.month: guard (1...12).contains(v) else { return }; t.tm_mon = Int32(v - 1)
        case Register.year:
            let century = (Int(t.tm_year) + 1900) / 100
            t.tm_year = Int32(clamping: century * 100 + v - 1900)
        default:
            let yearInCentury = (Int(t.tm_year) + 1900) % 100
            t.tm_year = Int32(clamping: v * 100 + yearInCentury - 1900)
        }
        let seconds = Int64(timegm(&t))
        s.offset = seconds &- now()
    }

    private func brokenDown(_ s: State) -> tm {
        var seconds = time_t(truncatingIfNeeded: now() &+ s.offset)
        var t = tm()
        if gmtime_r(&seconds, &t) == nil { t = tm() }
        return t
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
