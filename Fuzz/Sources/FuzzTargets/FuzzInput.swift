/// The fuzzer's bytes read as a stream of little-endian fields. Reading past the end yields
/// zeros, so every input — however short — is a complete, valid script for a target, and
/// libFuzzer's mutations (which shift, cut and splice bytes) always produce something to run.
public struct FuzzInput {
    public let bytes: [UInt8]
    public private(set) var position = 0

    public init(_ bytes: [UInt8]) { self.bytes = bytes }

    /// Whether every byte has been read.
    public var isEmpty: Bool { position >= bytes.count }

    /// Bytes not yet read.
    public var remaining: Int { max(0, bytes.count - position) }

    public mutating func u8() -> UInt8 {
        guard position < bytes.count else { return 0 }
        defer { position += 1 }
        return bytes[position]
    }

    public mutating func u16() -> UInt16 { integer(UInt16.self) }
    public mutating func u32() -> UInt32 { integer(UInt32.self) }
    public mutating func u64() -> UInt64 { integer(UInt64.self) }

    private mutating func integer<T: FixedWidthInteger>(_: T.Type) -> T {
        var v = T.zero
        for i in 0..<(T.bitWidth / 8) { v |= T(truncatingIfNeeded: u8()) << (8 * i) }
        return v
    }

    public mutating func bool() -> Bool { u8() & 1 != 0 }

    /// A number in `0..<n` (n > 0) from one byte.
    public mutating func below(_ n: Int) -> Int { Int(u8()) % max(n, 1) }

    /// Up to `count` bytes (fewer at the end of the input).
    public mutating func bytes(_ count: Int) -> [UInt8] {
        let n = min(max(count, 0), remaining)
        defer { position += n }
        return Array(bytes[position..<(position + n)])
    }

    /// A length-prefixed (one byte) byte string.
    public mutating func shortBytes() -> [UInt8] { bytes(Int(u8())) }

    /// A length-prefixed (one byte) string, decoded as UTF-8 with repair.
    public mutating func shortString() -> String { String(decoding: shortBytes(), as: UTF8.self) }

    /// Everything not yet read.
    public mutating func rest() -> [UInt8] { bytes(remaining) }
}

/// Writes what `FuzzInput` reads: how the seed corpus is built, so seeds and targets cannot
/// disagree on the layout.
public final class FuzzInputBuilder {
    public private(set) var bytes: [UInt8] = []

    public init() {}

    @discardableResult public func u8(_ v: UInt8) -> Self { bytes.append(v); return self }
    @discardableResult public func u16(_ v: UInt16) -> Self { integer(v) }
    @discardableResult public func u32(_ v: UInt32) -> Self { integer(v) }
    @discardableResult public func u64(_ v: UInt64) -> Self { integer(v) }
    @discardableResult public func bool(_ v: Bool) -> Self { u8(v ? 1 : 0) }

    private func integer<T: FixedWidthInteger>(_ v: T) -> Self {
        for i in 0..<(T.bitWidth / 8) { bytes.append(UInt8(truncatingIfNeeded: v >> (8 * i))) }
        return self
    }

    @discardableResult public func raw(_ b: [UInt8]) -> Self { bytes += b; return self }

    @discardableResult public func shortBytes(_ b: [UInt8]) -> Self {
        precondition(b.count <= 255, "seed field too long")
        bytes.append(UInt8(b.count))
        bytes += b
        return self
    }

    @discardableResult public func shortString(_ s: String) -> Self { shortBytes(Array(s.utf8)) }
}
