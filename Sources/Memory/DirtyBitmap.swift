import Synchronization

/// Who wants to know which guest pages were written; each has its own bit per page and its
/// own bit in a region's dirty log mask. QEMU: `DIRTY_MEMORY_VGA`, `_CODE`, `_MIGRATION`.
public enum DirtyMemoryClient: Int, Sendable, CaseIterable {
    /// Display devices redrawing what changed. QEMU: `DIRTY_MEMORY_VGA`.
    case vga = 0
    /// Translated code to invalidate (TCG only in QEMU; never set under KVM).
    /// QEMU: `DIRTY_MEMORY_CODE`.
    case code = 1
    /// Live migration and snapshots (set for all RAM while global dirty logging is on).
    /// QEMU: `DIRTY_MEMORY_MIGRATION`.
    case migration = 2

    /// The client's bit in a dirty log mask (`1 << client`).
    public var mask: UInt8 { 1 << UInt8(rawValue) }
}

/// The page size of dirty tracking. QEMU: `TARGET_PAGE_SIZE` (4 KiB on x86).
public let dirtyPageSize: UInt64 = 4096

/// One bit per page of a RAM block for each client, set when the page is written while that
/// client logs. Words are allocated the first time a client's bit is set, so RAM nobody logs
/// costs nothing. Thread-safe: vCPU threads (dispatch), the accelerator's log sync and the
/// reader may race. QEMU: the block's slice of `ram_list.dirty_memory[client]`.
final class DirtyBitmap: Sendable {
    /// Pages covered (the block's size rounded up to whole pages).
    let pages: UInt64
    private let bits = Mutex<[[UInt64]]>(Array(repeating: [], count: DirtyMemoryClient.allCases.count))

    init(bytes: UInt64) {
        pages = bytes / dirtyPageSize + (bytes % dirtyPageSize == 0 ? 0 : 1)
    }

    /// The pages `[offset, offset + size)` touches, clamped to the block; nil when none.
    /// Overflow-safe: offsets and sizes may come from a guest.
    func pageRange(offset: UInt64, size: UInt64) -> Range<UInt64>? {
        Self.pageRange(offset: offset, size: size, base: 0, pages: pages)
    }

    /// The pages (counted from the one at `base`) that `[offset, offset + size)` touches
    /// among `pages` pages; nil when none.
    static func pageRange(offset: UInt64, size: UInt64, base: UInt64, pages: UInt64) -> Range<UInt64>? {
        let page = UInt128(dirtyPageSize)
        let lo = max(UInt128(offset), UInt128(base))
        let hi = min(UInt128(offset) + UInt128(size), UInt128(base) + UInt128(pages) * page)
        guard lo < hi else { return nil }
        let first = (lo - UInt128(base)) / page, last = (hi - 1 - UInt128(base)) / page
        return UInt64(first)..<UInt64(last + 1)
    }

    /// Sets the bits of `pages` for every client in `mask`.
    func set(_ pages: Range<UInt64>, mask: UInt8) {
        guard mask != 0, !pages.isEmpty else { return }
        bits.withLock { clients in
            for client in DirtyMemoryClient.allCases where mask & client.mask != 0 {
                ensureAllocated(&clients[client.rawValue])
                Self.setRange(&clients[client.rawValue], pages)
            }
        }
    }

    /// Sets the bits given as a little-endian bitmap (bit i of word i/64 = page
    /// `firstPage + i`), for every client in `mask`; pages past the block are ignored.
    /// QEMU: `cpu_physical_memory_set_dirty_lebitmap()`.
    func set(bitmap: [UInt64], firstPage: UInt64, count: Int, mask: UInt8) {
        guard mask != 0, count > 0, firstPage < pages else { return }
        let usable = min(UInt64(count), pages - firstPage, UInt64(bitmap.count) * 64)
        bits.withLock { clients in
            for client in DirtyMemoryClient.allCases where mask & client.mask != 0 {
                ensureAllocated(&clients[client.rawValue])
                for w in 0..<Int((usable + 63) / 64) where bitmap[w] != 0 {
                    var word = bitmap[w]
                    while word != 0 {
                        let i = UInt64(w) * 64 + UInt64(word.trailingZeroBitCount)
                        word &= word - 1
                        guard i < usable else { break }
                        let page = firstPage + i
                        clients[client.rawValue][Int(page / 64)] |= 1 << (page % 64)
                    }
                }
            }
        }
    }

    /// Whether any page of `pages` is dirty for `client`.
    func test(_ pages: Range<UInt64>, client: DirtyMemoryClient) -> Bool {
        bits.withLock { clients in
            let words = clients[client.rawValue]
            guard !words.isEmpty else { return false }
            for page in pages where words[Int(page / 64)] >> (page % 64) & 1 != 0 { return true }
            return false
        }
    }

    /// Clears `pages` for `client` and returns what they were (bit i = page lowerBound + i).
    func copyAndClear(_ pages: Range<UInt64>, client: DirtyMemoryClient) -> [UInt64] {
        var out = [UInt64](repeating: 0, count: Int((pages.count + 63) / 64))
        bits.withLock { clients in
            guard !clients[client.rawValue].isEmpty else { return }
            for (i, page) in pages.enumerated() {
                let w = Int(page / 64), b = page % 64
                if clients[client.rawValue][w] >> b & 1 != 0 {
                    out[i / 64] |= 1 << UInt64(i % 64)
                    clients[client.rawValue][w] &= ~(1 << b)
                }
            }
        }
        return out
    }

    private func ensureAllocated(_ words: inout [UInt64]) {
        if words.isEmpty { words = [UInt64](repeating: 0, count: Int((pages + 63) / 64)) }
    }

    private static func setRange(_ words: inout [UInt64], _ pages: Range<UInt64>) {
        for page in pages { words[Int(page / 64)] |= 1 << (page % 64) }
    }
}

/// Which pages of a region range were dirty when it was taken (and cleared).
/// QEMU: `DirtyBitmapSnapshot`.
public struct DirtyBitmapSnapshot: Sendable {
    /// The region offset of the first page covered (page-aligned).
    public let start: UInt64
    /// Pages covered.
    public let pages: Int
    let words: [UInt64]

    /// Whether any page of `[offset, offset + size)` (region offsets) was dirty; bytes
    /// outside the snapshot count as clean. QEMU: `memory_region_snapshot_get_dirty()`.
    public func isDirty(offset: UInt64, size: UInt64) -> Bool {
        guard let range = DirtyBitmap.pageRange(offset: offset, size: size, base: start, pages: UInt64(pages)) else {
            return false
        }
        for page in range where words[Int(page / 64)] >> (page % 64) & 1 != 0 { return true }
        return false
    }

    /// The dirty pages as region offsets, ascending.
    public var dirtyOffsets: [UInt64] {
        (0..<pages).filter { words[$0 / 64] >> UInt64($0 % 64) & 1 != 0 }.map { start + UInt64($0) * dirtyPageSize }
    }
}
