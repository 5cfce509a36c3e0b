import VMMSys

/// One ioeventfd: a write of `size` bytes (0 = any size) at `start` — and, if `matchData`, of
/// exactly `data` — signals `notifier` instead of reaching the device.
///
/// Inside a region `start` is an offset in the region; in an address space's list it is the
/// absolute address. `data` is in the device's byte order. QEMU: `MemoryRegionIoeventfd`.
public struct MemoryRegionIoeventfd: Sendable, CustomStringConvertible {
    /// The offset in the region, or (in an address space's list and in listener calls) the
    /// absolute address. QEMU: `addr.start`.
    public var start: UInt64
    /// Length of the matched write; 0 matches writes of any length. QEMU: `addr.size`.
    public var size: UInt64
    /// Whether only writes of exactly `data` match. QEMU: `match_data`.
    public var matchData: Bool
    /// The value matched (with `matchData`), in the device's byte order. QEMU: `data`.
    public var data: UInt64
    /// What a matching write signals. QEMU: `e`.
    public var notifier: EventNotifier

    package init(start: UInt64, size: UInt64, matchData: Bool, data: UInt64, notifier: EventNotifier) {
        self.start = start
        self.size = size
        self.matchData = matchData
        self.data = data
        self.notifier = notifier
    }

    /// The ordering that keeps ioeventfd arrays sorted and drives the one-pass merge diff:
    /// start, then size, then unmatched before matched, then data (only when matched), then the
    /// notifier's identity. QEMU: `memory_region_ioeventfd_before()`.
    package func isOrderedBefore(_ b: MemoryRegionIoeventfd) -> Bool {
        if start != b.start { return start < b.start }
        if size != b.size { return size < b.size }
        if matchData != b.matchData { return !matchData }
        if matchData, data != b.data { return data < b.data }
        let l = ObjectIdentifier(notifier), r = ObjectIdentifier(b.notifier)
        return l < r
    }

    /// The equality used to find an ioeventfd to delete (and to match a write in the userspace
    /// fallback): same start, and either side's size 0 is a wildcard; otherwise same size,
    /// same matching mode, same data when matching, same notifier.
    /// QEMU: `memory_region_ioeventfd_equal()`.
    package func matches(_ b: MemoryRegionIoeventfd) -> Bool {
        guard start == b.start else { return false }
        if size == 0 || b.size == 0 { return true }
        return size == b.size && matchData == b.matchData && (!matchData || data == b.data)
            && notifier === b.notifier
    }

    /// `0x… size=… data=0x…|any data fd=…`, for logs and `info ioeventfds`.
    public var description: String {
        let hex = String(start, radix: 16)
        let what = matchData ? "data=0x\(String(data, radix: 16))" : "any data"
        return "0x\(hex) size=\(size) \(what) fd=\(notifier.fileDescriptor.rawValue)"
    }
}

extension MemoryRegionIoeventfd {
    /// Whether two entries are the same registration (neither before the other).
    func isSameEntry(_ b: MemoryRegionIoeventfd) -> Bool { !isOrderedBefore(b) && !b.isOrderedBefore(self) }
}

/// Converts a `size`-byte value between the guest's (little-endian) and a device's byte order.
/// QEMU: `adjust_endianness()`.
@inline(__always)
func adjustEndianness(_ value: UInt64, size: Int, _ endianness: Endianness) -> UInt64 {
    guard endianness == .big else { return value }
    switch size {
    case 2: return UInt64(UInt16(truncatingIfNeeded: value).byteSwapped)
    case 4: return UInt64(UInt32(truncatingIfNeeded: value).byteSwapped)
    case 8: return value.byteSwapped
    default: return value
    }
}
