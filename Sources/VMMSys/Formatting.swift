/// Number formatting for logs, monitor output and benchmarks, in one place and without
/// Foundation.

/// `0x` and the hexadecimal digits of `value`, zero-padded to at least `width` digits.
package func hex<T: BinaryInteger>(_ value: T, width: Int = 0) -> String {
    let digits = String(value, radix: 16)
    return "0x" + String(repeating: "0", count: max(0, width - digits.count)) + digits
}

/// `value` with exactly `places` decimals, rounded half away from zero (as `%.Nf` prints it
/// for the values benchmarks produce). Non-finite values print as `nan`/`inf`/`-inf`.
package func fixed(_ value: Double, _ places: Int) -> String {
    guard value.isFinite else { return value.isNaN ? "nan" : (value < 0 ? "-inf" : "inf") }
    let places = max(0, min(places, 9))
    var scale: Double = 1
    for _ in 0..<places { scale *= 10 }
    let scaled = (abs(value) * scale).rounded(.toNearestOrAwayFromZero)
    guard scaled < 9.2e18 else { return "\(value)" }
    let n = UInt64(scaled)
    let whole = n / UInt64(scale), fraction = n % UInt64(scale)
    let sign = value < 0 && n != 0 ? "-" : ""
    guard places > 0 else { return sign + String(whole) }
    let f = String(fraction)
    return sign + String(whole) + "." + String(repeating: "0", count: places - f.count) + f
}

/// `text` left-aligned in a column of `width` characters (with one space when it is wider).
package func padded(_ text: String, _ width: Int) -> String {
    text.count >= width ? text + " " : text + String(repeating: " ", count: width - text.count)
}
