/// Guest accesses: what a vCPU exit (or a device's DMA) does to an address space.
/// QEMU: `address_space_rw()` → `flatview_read/write_continue()` → `memory_region_dispatch_*()`.
extension AddressSpace {
    /// Reads `size` (1...8) bytes at `address`, little-endian. Pieces on RAM are copied; pieces
    /// on devices are split to sizes the region takes and dispatched. Bytes no region claims
    /// read as 0 with `.decodeError`, as QEMU's `io_mem_unassigned` answers (its ops accept
    /// nothing, and a refused read yields `unassigned_mem_read()`'s 0; QEMU 7.2 on the pc
    /// machine reads 0 from unassigned MMIO). Unassigned I/O ports read all ones because the
    /// "io" root is itself an I/O region with `MemoryRegionOps.unassignedIO`, as QEMU's.
    /// A `size` outside 1...8 (no exit carries one) answers all ones and `.decodeError`.
    public func read(_ address: UInt64, size: Int) -> (value: UInt64, result: MemTxResult) {
        read(address, size: size, in: currentMap)
    }

    /// `read` against one flat view snapshot (the one the caller already holds).
    func read(_ address: UInt64, size: Int, in view: FlatView) -> (value: UInt64, result: MemTxResult) {
        guard size >= 1, size <= 8 else { return (UInt64.max, .decodeError) }
        var value: UInt64 = 0
        var result = MemTxResult.ok
        var done = 0
        while done < size {
            let (addr, overflow) = address.addingReportingOverflow(UInt64(done))
            let remaining = size - done
            guard !overflow, let i = view.lookup(addr) else {
                // Unassigned (or past 2^64): these bytes stay 0.
                let l = overflow ? remaining : unassignedLength(view, addr, remaining)
                counters.unassignedReadCount.add(1, ordering: .relaxed)
                result = .decodeError
                done += l
                continue
            }
            let fr = view.ranges[i]
            let offset = fr.offsetInRegion &+ (addr - fr.start)
            var l = pieceLength(fr, addr, remaining)
            var piece: UInt64
            var r = MemTxResult.ok
            switch fr.region.kind {
            case .ram(let block), .rom(let block):
                piece = block.load(offset: offset, size: l) ?? ones(l)
            case .io(let ops):
                if l < remaining { l = deviceLength(fr.region, offset, remaining) }
                l = accessSize(ops, l, offset)
                (piece, r) = dispatchRead(fr.region, ops, offset, l)
            case .container, .alias:
                piece = 0
                r = .decodeError
            }
            if r != .ok { result = r }
            value |= (piece & ones(l)) << (8 * UInt64(done))
            done += l
        }
        return (value, result)
    }

    /// Writes the low `size` (1...8) bytes of `value` at `address`, little-endian. Writes to
    /// read-only memory and unassigned addresses are dropped (and counted) with
    /// `.decodeError`, as QEMU's `unassigned_mem_ops` refuse them. RAM writes mark the pages
    /// dirty for the clients logging the region (QEMU: `invalidate_and_set_dirty()`).
    @discardableResult
    public func write(_ address: UInt64, value: UInt64, size: Int) -> MemTxResult {
        guard size >= 1, size <= 8 else { return .decodeError }
        let view = currentMap
        var result = MemTxResult.ok
        var done = 0
        while done < size {
            let (addr, overflow) = address.addingReportingOverflow(UInt64(done))
            let remaining = size - done
            guard !overflow, let i = view.lookup(addr) else {
                counters.unassignedWriteCount.add(1, ordering: .relaxed)
                result = .decodeError
                done += overflow ? remaining : unassignedLength(view, addr, remaining)
                continue
            }
            let fr = view.ranges[i]
            let offset = fr.offsetInRegion &+ (addr - fr.start)
            var l = pieceLength(fr, addr, remaining)
            let piece = (value >> (8 * UInt64(done))) & ones(l)
            switch fr.region.kind {
            case .ram(let block) where !fr.readOnly:
                block.store(offset: offset, value: piece, size: l)
                if fr.dirtyLogMask != 0, let dirty = fr.region.dirtyBitmap,
                   let pages = dirty.pageRange(offset: offset, size: UInt64(l)) {
                    dirty.set(pages, mask: fr.dirtyLogMask)
                }
            case .ram, .rom:
                // ROM behaves as QEMU's: the write finds no ops that accept it.
                counters.rejectedCount.add(1, ordering: .relaxed)
                result = .decodeError
            case .io(let ops):
                if l < remaining { l = deviceLength(fr.region, offset, remaining) }
                l = accessSize(ops, l, offset)
                let r = dispatchWrite(fr.region, ops, offset, (value >> (8 * UInt64(done))) & ones(l), l)
                if r != .ok { result = r }
            case .container, .alias:
                result = .decodeError
            }
            done += l
        }
        return result
    }

    @inline(__always)
    private func ones(_ bytes: Int) -> UInt64 {
        bytes >= 8 ? UInt64.max : (UInt64(1) << (8 * UInt64(bytes))) - 1
    }

    @inline(__always)
    private func pieceLength(_ fr: FlatRange, _ addr: UInt64, _ remaining: Int) -> Int {
        let left = fr.end - UInt128(addr)
        return left < UInt128(remaining) ? Int(left) : remaining
    }

    /// How much of an access that starts in device region `mr` at `offset` goes to it when
    /// the access runs past the flat range: a device register is accessed at its full width
    /// even where another region overlaps the rest of it (a 4-byte write to 0xcf8 reaches
    /// CONFIG_ADDRESS whole although the PIIX reset register at 0xcf9 sits above it), as QEMU
    /// clamps only RAM at section boundaries. Deliberately, the piece still ends at the
    /// region's own end, so no callback is handed bytes past its size (QEMU passes the whole
    /// access to the region whatever its size). QEMU: address_space_translate_internal().
    private func deviceLength(_ mr: MemoryRegion, _ offset: UInt64, _ remaining: Int) -> Int {
        let size = mr.size
        guard UInt128(offset) < size else { return 1 }
        let left = size - UInt128(offset)
        return left < UInt128(remaining) ? Int(left) : remaining
    }

    private func unassignedLength(_ view: FlatView, _ addr: UInt64, _ remaining: Int) -> Int {
        guard let next = view.nextStart(after: addr) else { return remaining }
        let gap = next - addr
        return gap < UInt64(remaining) ? Int(gap) : remaining
    }

    /// The piece of an access dispatched at once: at most `length` and the valid maximum (4
    /// when unset), a power of two, and aligned to `offset` unless the *implementation*
    /// handles unaligned accesses — QEMU bounds by `impl.unaligned` here and checks
    /// `valid.unaligned` only afterwards, in `memory_region_access_valid()`, so a region valid
    /// for unaligned accesses whose callbacks are not is fed aligned pieces, and one whose
    /// callbacks are but whose valid rules are not refuses the unaligned access whole.
    /// QEMU: `memory_access_size()` (softmmu/physmem.c, 7.2).
    @inline(__always)
    func accessSize(_ ops: MemoryRegionOps, _ length: Int, _ offset: UInt64) -> Int {
        var maxSize = ops.valid.maxAccessSize == 0 ? 4 : ops.valid.maxAccessSize
        if !ops.implementation.unaligned {
            let alignment = offset & (0 &- offset)
            if alignment != 0, alignment < UInt64(maxSize) { maxSize = Int(alignment) }
        }
        var l = min(length, maxSize)
        while l & (l - 1) != 0 { l &= l - 1 }   // round down to a power of two
        return max(l, 1)
    }

    /// Whether the region accepts this access at all. QEMU: `memory_region_access_valid()`.
    @inline(__always)
    private func accessValid(_ ops: MemoryRegionOps, _ offset: UInt64, _ size: Int, write: Bool) -> Bool {
        if let accepts = ops.accepts, !accepts(offset, size, write) { return false }
        if !ops.valid.unaligned && offset & UInt64(size - 1) != 0 { return false }
        if ops.valid.maxAccessSize == 0 { return true }
        return size <= ops.valid.maxAccessSize && size >= max(ops.valid.minAccessSize, 1)
    }

    /// A refused access reads 0 (`unassigned_mem_read()`) with `.decodeError`. Before the
    /// callbacks, a region marked to flush drains the coalesced MMIO buffer.
    /// QEMU: `memory_region_dispatch_read()`, `prepare_mmio_access()`.
    private func dispatchRead(_ mr: MemoryRegion, _ ops: MemoryRegionOps, _ offset: UInt64, _ size: Int) -> (UInt64, MemTxResult) {
        if mr.flushCoalescedFlag.load(ordering: .relaxed) { system.flushCoalescedMMIO() }
        guard accessValid(ops, offset, size, write: false) else {
            counters.rejectedCount.add(1, ordering: .relaxed)
            return (0, .decodeError)
        }
        mr.readCount.add(1, ordering: .relaxed)
        let v = ops.accessWithAdjustedSize(offset: offset, size: size, read: true, value: 0)
        return (adjustEndianness(v, size: size, ops.endianness), .ok)
    }

    /// QEMU: `memory_region_dispatch_write()`, `prepare_mmio_access()` (with the eventfd check of
    /// `memory_region_dispatch_write_eventfds()` when userspace signals ioeventfds).
    private func dispatchWrite(_ mr: MemoryRegion, _ ops: MemoryRegionOps, _ offset: UInt64, _ value: UInt64, _ size: Int) -> MemTxResult {
        if mr.flushCoalescedFlag.load(ordering: .relaxed) { system.flushCoalescedMMIO() }
        guard accessValid(ops, offset, size, write: true) else {
            counters.rejectedCount.add(1, ordering: .relaxed)
            return .decodeError
        }
        let data = adjustEndianness(value, size: size, ops.endianness)
        if userspaceSignalsEventfds, let notifier = mr.signalMatchingEventfd(offset: offset, value: data, size: size) {
            counters.eventfdSignalCount.add(1, ordering: .relaxed)
            counters.countSignal(of: notifier)
            return .ok
        }
        mr.writeCount.add(1, ordering: .relaxed)
        _ = ops.accessWithAdjustedSize(offset: offset, size: size, read: false, value: data)
        return .ok
    }
}

extension MemoryRegionOps {
    /// Splits (or widens) one access into the sizes the callbacks implement, assembling reads
    /// in the device's byte order. QEMU: `access_with_adjusted_size()`.
    @inline(__always)
    func accessWithAdjustedSize(offset: UInt64, size: Int, read isRead: Bool, value: UInt64) -> UInt64 {
        let minSize = implementation.minAccessSize == 0 ? 1 : implementation.minAccessSize
        let maxSize = implementation.maxAccessSize == 0 ? 4 : implementation.maxAccessSize
        let accessSize = Swift.max(Swift.min(size, maxSize), minSize)
        let mask: UInt64 = accessSize >= 8 ? .max : (UInt64(1) << (8 * UInt64(accessSize))) - 1
        var result: UInt64 = 0
        var i = 0
        while i < size {
            let shift = endianness == .big ? (size - accessSize - i) * 8 : i * 8
            let at = offset &+ UInt64(i)
            if isRead {
                let tmp = read(at, accessSize) & mask
                result |= shift >= 0 ? tmp << UInt64(shift) : tmp >> UInt64(-shift)
            } else {
                let tmp = (shift >= 0 ? value >> UInt64(shift) : value << UInt64(-shift)) & mask
                write(at, tmp, accessSize)
            }
            i += accessSize
        }
        return result
    }
}
