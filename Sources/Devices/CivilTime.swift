/// A UTC date and time of day, converted to and from seconds since the Unix epoch with plain
/// integer arithmetic (the proleptic Gregorian calendar), so the RTC needs no C time functions.
/// Years are those a 64-bit second count can reach without overflow in the day arithmetic.
struct CivilTime: Equatable, Sendable {
    var year: Int
    /// 1...12.
    var month: Int
    /// 1...31.
    var day: Int
    var hour: Int
    var minute: Int
    var second: Int

    /// 0 = Sunday ... 6 = Saturday (1970-01-01 was a Thursday).
    var weekday: Int {
        let d = Self.days(year: year, month: month, day: day)
        return Int(((d % 7) + 11) % 7)
    }

    init(year: Int, month: Int, day: Int, hour: Int, minute: Int, second: Int) {
        (self.year, self.month, self.day, self.hour, self.minute, self.second) = (year, month, day, hour, minute, second)
    }

    /// The calendar time `seconds` after the epoch (negative: before it).
    init(unix seconds: Int64) {
        // Clamp to ±2^50 s (±35 million years): the arithmetic below never overflows.
        let s = min(max(seconds, -(1 << 50)), 1 << 50)
        var days = s / 86_400, rest = s % 86_400
        if rest < 0 { rest += 86_400; days -= 1 }
        hour = Int(rest / 3600); minute = Int(rest / 60 % 60); second = Int(rest % 60)
        // Days since 0000-03-01, in 400-year eras of 146097 days.
        let z = days + 719_468
        let era = (z >= 0 ? z : z - 146_096) / 146_097
        let doe = z - era * 146_097
        let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100)
        let mp = (5 * doy + 2) / 153
        day = Int(doy - (153 * mp + 2) / 5 + 1)
        month = Int(mp < 10 ? mp + 3 : mp - 9)
        year = Int(yoe + era * 400 + (month <= 2 ? 1 : 0))
    }

    /// Seconds since the epoch. Fields out of range roll over (a day 32 is the next month's 1st).
    var unix: Int64 {
        Self.days(year: year, month: month, day: day) &* 86_400 &+ Int64(hour) &* 3600 &+ Int64(minute) &* 60 &+ Int64(second)
    }

    /// Days from 1970-01-01 to the date (month 1...12; other fields as given).
    static func days(year: Int, month: Int, day: Int) -> Int64 {
        let y = Int64(clamping: year) - (month <= 2 ? 1 : 0)
        let era = (y >= 0 ? y : y - 399) / 400
        let yoe = y - era * 400
        let m = Int64(month)
        let doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + Int64(day) - 1
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy
        return era * 146_097 + doe - 719_468
    }
}
