/// Splits a byte stream into top-level JSON values, as QMP clients send them (one after
/// another, no framing): braces and brackets are counted outside strings, and a value is
/// complete when the count returns to zero. A value longer than `maxValueBytes` is dropped
/// whole and reported, and the streamer resynchronizes at the next top-level value.
/// QEMU: qobject/json-streamer.c (MAX_TOKEN_SIZE, MAX_NESTING).
///
/// `package`: `QMPSession` frames its input with it; clients feed the session bytes.
package struct JSONStreamer {
    /// One input unit: a complete value's bytes, or an error in place of one.
    package enum Item: Equatable {
        /// The bytes of one complete top-level value, for ``JSONParser``.
        case value([UInt8])
        /// A value longer than ``maxValueBytes``, dropped whole. QEMU: the size limit of
        /// `json_message_process_token()` (MAX_TOKEN_SIZE).
        case tooLarge
    }

    /// Longest value accepted, in bytes.
    package let maxValueBytes: Int
    private var buffer: [UInt8] = []
    private var depth = 0
    private var inString: UInt8?
    private var escaped = false
    private var discarding = false

    /// A streamer accepting values of up to `maxValueBytes` bytes. QEMU allows 64 MiB
    /// (MAX_TOKEN_SIZE); the smaller default bounds what one client makes this process buffer.
    package init(maxValueBytes: Int = 1 << 20) { self.maxValueBytes = maxValueBytes }

    /// Feeds bytes; returns the values (and errors) they completed.
    /// QEMU: `json_message_process_token()`.
    package mutating func feed(_ bytes: some Sequence<UInt8>) -> [Item] {
        var out: [Item] = []
        for b in bytes {
            let space = [0x20, 0x09, 0x0a, 0x0d].contains(b)
            if inString == nil && depth == 0 {
                // Between values: a bare scalar ends at whitespace or where a new value opens.
                if space || b == UInt8(ascii: "{") || b == UInt8(ascii: "[") { finish(into: &out) }
                if space { continue }
            }
            if let q = inString {
                if escaped { escaped = false } else if b == UInt8(ascii: "\\") { escaped = true } else if b == q { inString = nil }
            } else {
                switch b {
                case UInt8(ascii: "\""), UInt8(ascii: "'"): inString = b
                case UInt8(ascii: "{"), UInt8(ascii: "["): depth += 1
                case UInt8(ascii: "}"), UInt8(ascii: "]"): depth -= 1
                default: break
                }
            }
            if !discarding {
                buffer.append(b)
                if buffer.count > maxValueBytes {
                    buffer.removeAll()
                    discarding = true
                    out.append(.tooLarge)
                }
            }
            // A value ends when nesting returns to zero outside a string (a stray closing
            // bracket ends one too; the parser then reports it).
            if inString == nil && depth <= 0 && (b == UInt8(ascii: "}") || b == UInt8(ascii: "]")) { finish(into: &out) }
        }
        return out
    }

    private mutating func finish(into out: inout [Item]) {
        if !discarding && !buffer.isEmpty { out.append(.value(buffer)) }
        buffer.removeAll(keepingCapacity: true)
        depth = 0
        discarding = false
    }
}
