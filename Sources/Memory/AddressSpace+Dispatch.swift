/// Guest accesses: what a vCPU exit (or a device's DMA) does to an address space.
/// QEMU: `address_space_rw()` → `flatview_read/write_continue()` → `memory_region_dispatch_*()`.
extension AddressSpace {
    /// Reads `size` (1...8) bytes at `address`, little-endian. Pieces on RAM are copied; pieces
    /// on devices are split to sizes the region accepts and dispatched; unassigned bytes read
    /// as all ones.
    public func read(_ address: UInt64, size: Int) -> (value: UInt64, result: MemTxResult) {
        guard size >= 1, size <= 8 else { return (UInt64.max, .decodeError) }
        let view = currentMap
        var value: UInt64 = 0
        var result = MemTxResult.ok
        var done = 0
        while done < size {
            let (addr, overflow) = address.addingReportingOverflow(UInt64(done))
            let remaining = size - done
            guard !overflow, let i = view.lookup(addr) else {
                let l = overflow ? remaining : unassignedLength(view, addr, remaining)
                value |= ones(l) << (8 * UInt64(done))
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
                l = accessSize(ops, l, offset)
                (piece, r) = dispatchRead(fr.region, ops, offset, l)
            case .container, .alias:
                piece = ones(l)
                r = .decodeError
            }
            if r != .ok { result = r }
            value |= (piece & ones(l)) << (8 * UInt64(done))
            done += l
        }
        return (value, result)
    }

    /// Writes the low `size` (1...8) bytes of `value` at `address`, little-endian. Writes to
    /// read-only memory and unassigned addresses are dropped (and counted).
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
            case .ram, .rom:
                // ROM behaves as QEMU's: the write finds no ops that accept it.
                counters.rejectedCount.add(1, ordering: .relaxed)
                result = .decodeError
            case .io(let ops):
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

    private func unassignedLength(_ view: FlatView, _ addr: UInt64, _ remaining: Int) -> Int {
        guard let next = view.nextStart(after: addr) else { return remaining }
        let gap = next - addr
        return gap < UInt64(remaining) ? Int(gap) : remaining
    }

    /// The largest access the region validly takes at `offset`, at most `length`, a power of
    /// two, aligned unless the region allows unaligned. QEMU: `memory_access_size()`.
    @inline(__always)
    func accessSize(_ ops: MemoryRegionOps, _ length: Int, _ offset: UInt64) -> Int {
        var maxSize = ops.valid.maxAccessSize == 0 ? 4 : ops.valid.maxAccessSize
        if !ops.valid.unaligned {
            let alignment = offset & (0 &- offset)
            if alignment != 0, alignment < UInt64(maxSize) { maxSize = Int(alignment) }
        }
        var l = min(length, maxSize)
        while l & (l - 1) != 0 { l &= l - 1 }   // round down to a power of two
        return max(l, 1)
    }

    /// Whether the region accepts this access at all. QEMU: `memory_region_access_valid()`.
    @inline(__always)
    private func accessValid(_ ops: MemoryRegionOps, _ offset: UInt64, _ size: Int) -> Bool {
        if !ops.valid.unaligned && offset & UInt64(size - 1) != 0 { return false }
        if ops.valid.maxAccessSize == 0 { return true }
        return size <= ops.valid.maxAccessSize && size >= max(ops.valid.minAccessSize, 1)
    }

    /// QEMU: `memory_region_dispatch_read()`.
    private func dispatchRead(_ mr: MemoryRegion, _ ops: MemoryRegionOps, _ offset: UInt64, _ size: Int) -> (UInt64, MemTxResult) {
        guard accessValid(ops, offset, size) else {
            counters.rejectedCount.add(1, ordering: .relaxed)
            return (0, .decodeError)
        }
        mr.readCount.add(1, ordering: .relaxed)
        let v = ops.accessWithAdjustedSize(offset: offset, size: size, read: true, value: 0)
        return (adjustEndianness(v, size: size, ops.endianness), .ok)
    }

    /// QEMU: `memory_region_dispatch_write()` (with the eventfd check of
    /// `memory_region_dispatch_write_eventfds()` when userspace signals ioeventfds).
    private func dispatchWrite(_ mr: MemoryRegion, _ ops: MemoryRegionOps, _ offset: UInt64, _ value: UInt64, _ size: Int) -> MemTxResult {
        guard accessValid(ops, offset, size) else {
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
