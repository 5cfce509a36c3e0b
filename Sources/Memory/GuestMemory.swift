/// Why a guest-memory access failed.
public enum GuestMemoryError: Error, Equatable, CustomStringConvertible {
    /// Part of the range is not RAM or ROM (a device, or nothing).
    case notRAM(address: UInt64)
    /// The range wraps past the end of the address space.
    case overflow(address: UInt64, count: Int)
    /// A device's DMA write reached read-only memory (ROM, or RAM mapped read-only); nothing
    /// was written. QEMU: `dma_memory_write()` returning `MEMTX_DECODE_ERROR` there.
    case readOnly(address: UInt64)

    /// One line naming the first address that failed.
    public var description: String {
        switch self {
        case .notRAM(let a): return "guest address 0x\(String(a, radix: 16)) is not RAM"
        case .overflow(let a, let n): return "guest range 0x\(String(a, radix: 16)) + \(n) wraps around"
        case .readOnly(let a): return "guest address 0x\(String(a, radix: 16)) is read-only (ROM): DMA write dropped"
        }
    }
}

/// Bounds-checked access to guest RAM and ROM by guest-physical address. It copies; it never
/// hands out a pointer. Every access is checked whole before any byte moves, so a failing
/// access changes nothing.
///
/// There are two kinds, and which one a caller holds decides whether writes reach ROM:
/// - a **loader's** (`AddressSpace.guestMemory`, `romWrites: .fill`) fills ROM as well as RAM
///   — the ACPI tables in the BIOS area, a kernel segment that lands there. QEMU:
///   `address_space_write_rom()` / `rom_add_blob()`.
/// - a **device's** (`AddressSpace.dmaMemory`, `romWrites: .refuse`) is what DMA goes
///   through: reads see ROM, but a write touching ROM (or read-only RAM) throws
///   `.readOnly` and writes nothing. QEMU's `dma_memory_write()` → `address_space_write()`
///   finds a ROM section not directly writable, dispatches to its ops, which accept nothing,
///   drops those bytes and returns `MEMTX_DECODE_ERROR` — so the ROM is left unchanged and the
///   device is told it failed, as here. Deliberate difference: QEMU still writes the RAM
///   part of a write that straddles RAM and ROM; here nothing is written (the same
///   all-or-nothing rule as for a range that leaves RAM).
public struct GuestMemory: Sendable {
    /// What a write does where it meets read-only memory.
    public enum ROMWrites: Sendable, Equatable {
        /// Write it (a loader filling firmware). QEMU: `address_space_write_rom()`.
        case fill
        /// Refuse the whole write with `.readOnly` (device DMA). QEMU: `dma_memory_write()`.
        case refuse
    }

    /// The space whose current flat view each access resolves against.
    public let addressSpace: AddressSpace
    /// Whether writes fill ROM (a loader's accessor) or are refused there (a device's).
    public let romWrites: ROMWrites

    /// An accessor for `addressSpace`; ``AddressSpace/guestMemory`` and
    /// ``AddressSpace/dmaMemory`` are the two usual ones.
    public init(_ addressSpace: AddressSpace, romWrites: ROMWrites = .fill) {
        self.addressSpace = addressSpace
        self.romWrites = romWrites
    }

    /// One RAM/ROM piece of an access: the block and offset, where it sits in the caller's
    /// buffer, and the flat range's region and dirty log mask (for marking writes).
    private struct Piece {
        var block: RAMBlock
        var offset: UInt64
        var done: Int
        var length: Int
        var region: MemoryRegion
        var dirtyLogMask: UInt8
    }

    /// Visits each RAM/ROM piece of `[address, address + count)` after checking all of them.
    /// Every sum here is overflow-checked: `address` and `count` come from the guest.
    private func forEachPiece(_ address: UInt64, _ count: Int, writing: Bool,
                              _ body: (Piece) -> Void) throws(GuestMemoryError) {
        guard count >= 0 else { throw .overflow(address: address, count: count) }
        guard count > 0 else { return }
        // The last byte, address + (count - 1), must not pass 2^64 - 1.
        let (_, wraps) = address.addingReportingOverflow(UInt64(count) &- 1)
        guard !wraps else { throw .overflow(address: address, count: count) }
        let view = addressSpace.currentMap
        // Check the whole range first, so a failing access changes nothing.
        var pieces: [Piece] = []
        var done = 0
        while done < count {
            // Cannot wrap (checked above: done < count); stays checked all the same.
            let (addr, o1) = address.addingReportingOverflow(UInt64(done))
            guard !o1, let i = view.lookup(addr), let block = view.ranges[i].region.ramBlock else {
                throw .notRAM(address: addr)
            }
            let fr = view.ranges[i]
            if writing, romWrites == .refuse, fr.readOnly || !fr.region.isWritableRAM {
                throw .readOnly(address: addr)
            }
            let left = fr.end - UInt128(addr)                 // > 0: the range contains addr
            let rest = count - done
            let l = left < UInt128(rest) ? Int(left) : rest
            let (offset, o2) = fr.offsetInRegion.addingReportingOverflow(addr - fr.start)
            guard !o2, block.contains(offset: offset, count: l) else { throw .notRAM(address: addr) }
            pieces.append(Piece(block: block, offset: offset, done: done, length: l, region: fr.region,
                                dirtyLogMask: fr.dirtyLogMask))
            done += l                                         // l <= rest: done stays <= count
        }
        for p in pieces { body(p) }
    }

    /// Copies `count` bytes starting at `address` (ROM included).
    /// - Throws: ``GuestMemoryError/notRAM(address:)`` if any byte is not RAM or ROM,
    ///   ``GuestMemoryError/overflow(address:count:)`` if the range passes 2^64 or `count` is
    ///   negative.
    /// Deliberate difference: QEMU's `address_space_read()` also reads device registers; here
    /// guest memory is RAM and ROM only, and a range reaching anything else is refused whole.
    /// QEMU: `address_space_read()`, `dma_memory_read()`.
    public func read(at address: UInt64, count: Int) throws(GuestMemoryError) -> [UInt8] {
        var pieces: [Piece] = []
        try forEachPiece(address, count, writing: false) { pieces.append($0) }
        // Allocated only once the whole range is known to be guest memory.
        var out = [UInt8](repeating: 0, count: count)
        for p in pieces {
            if let bytes = p.block.read(offset: p.offset, count: p.length) {
                out.replaceSubrange(p.done..<(p.done + p.length), with: bytes)
            }
        }
        return out
    }

    /// Copies `bytes` to `address`; nothing is written if any part is not RAM (or, for a
    /// device's accessor, is read-only). The pages written are marked dirty for the clients
    /// logging each piece's region (nothing while none does): a device's DMA is invisible to
    /// the kernel's dirty log, so this is how a snapshot or migration learns of it. Marked
    /// after the bytes land, so a reader that sees the bit sees the data. Deliberate
    /// difference: the clients are those of the flat range as last committed (the mask the
    /// accelerator's slots log with), where QEMU reads the region's live mask, so a write made
    /// inside a transaction that has not yet turned logging on is not marked, just as a guest
    /// write is not logged yet. QEMU: `flatview_write_continue()` →
    /// `invalidate_and_set_dirty()`, also from `address_space_write_rom()`.
    /// - Throws: as ``read(at:count:)``, and ``GuestMemoryError/readOnly(address:)`` when a
    ///   device's accessor meets read-only memory; nothing is written then.
    public func write(_ bytes: some Collection<UInt8>, at address: UInt64) throws(GuestMemoryError) {
        let array = Array(bytes)
        try forEachPiece(address, array.count, writing: true) { p in
            p.block.write(array[p.done..<(p.done + p.length)], offset: p.offset)
            if p.dirtyLogMask != 0, let dirty = p.region.dirtyBitmap,
               let pages = dirty.pageRange(offset: p.offset, size: UInt64(p.length)) {
                dirty.set(pages, mask: p.dirtyLogMask)
            }
        }
    }

    /// Reads a little-endian integer, whole or not at all (see ``read(at:count:)``).
    /// QEMU: `address_space_ldl_le()` and its siblings (`ldub`, `lduw_le`, `ldq_le`).
    public func load<T: FixedWidthInteger>(_ type: T.Type, at address: UInt64) throws(GuestMemoryError) -> T {
        let bytes = try read(at: address, count: MemoryLayout<T>.size)
        var v = T.zero
        for (i, b) in bytes.enumerated() { v |= T(truncatingIfNeeded: b) << (8 * i) }
        return v
    }

    /// Writes a little-endian integer, whole or not at all (see ``write(_:at:)``).
    /// QEMU: `address_space_stl_le()` and its siblings (`stb`, `stw_le`, `stq_le`).
    public func store<T: FixedWidthInteger>(_ value: T, at address: UInt64) throws(GuestMemoryError) {
        let n = MemoryLayout<T>.size
        let bytes = (0..<n).map { UInt8(truncatingIfNeeded: value >> (8 * $0)) }
        try write(bytes, at: address)
    }
}

extension MemoryRegion {
    /// RAM the guest may write (not ROM). QEMU: `memory_access_is_direct(mr, true)` for RAM.
    var isWritableRAM: Bool {
        if case .ram = kind { return true }
        return false
    }
}

extension AddressSpace {
    /// A loader's access to this space's RAM and ROM: writes fill ROM too (firmware tables,
    /// kernel segments in the BIOS area). Devices use `dmaMemory`. QEMU: `address_space_write_rom()`.
    public var guestMemory: GuestMemory { GuestMemory(self, romWrites: .fill) }

    /// A device's DMA access to this space's RAM: ROM reads as ROM, a write reaching ROM is
    /// refused whole (`GuestMemoryError.readOnly`). QEMU: `dma_memory_read/write()`.
    public var dmaMemory: GuestMemory { GuestMemory(self, romWrites: .refuse) }
}
