import Memory

/// Allocation-free access to guest RAM for the virtqueue hot path (descriptor reads, ring index
/// loads and stores, packet copies). `GuestMemory`'s own calls return fresh arrays and build a
/// list of pieces on every access; these resolve the address with one lookup in the current
/// flat view and go straight to the `RAMBlock`'s bounds-checked `load`/`store`/`write`.
///
/// Same contract as `GuestMemory`'s DMA accessor: every address and length is checked with
/// overflow-reporting arithmetic; an access that is not entirely RAM fails (nil/false) and
/// changes nothing; writes refuse ROM and read-only ranges. An access spanning two flat ranges
/// (RAM split by a hole or by the 4 GiB boundary) falls back to `GuestMemory`'s general path,
/// so it is never refused for being split.
extension GuestMemory {
    /// The block and offset holding all of `[address, address + count)`, when one flat range
    /// of RAM (writable RAM for `writing`) covers it.
    @inline(__always)
    func directRange(_ address: UInt64, _ count: Int, writing: Bool) -> (block: RAMBlock, offset: UInt64)? {
        guard count > 0 else { return nil }
        let view = addressSpace.currentMap
        guard let i = view.lookup(address) else { return nil }
        let range = view.ranges[i]
        guard let block = range.region.ramBlock else { return nil }
        if writing {
            // While a client logs dirty pages here, writes take the marking path (`write`/
            // `store`), so device DMA is never missing from a snapshot's or migration's log.
            guard !range.readOnly, range.dirtyLogMask == 0, case .ram = range.region.kind else { return nil }
        }
        // count fits before the range's end (address is inside the range, so no underflow).
        guard UInt128(count) <= range.end - UInt128(address) else { return nil }
        let (offset, overflow) = range.offsetInRegion.addingReportingOverflow(address - range.start)
        guard !overflow, block.contains(offset: offset, count: count) else { return nil }
        return (block, offset)
    }

    /// A little-endian integer, or nil when it is not in guest RAM.
    @inline(__always)
    func loadDirect<T: FixedWidthInteger & UnsignedInteger>(_: T.Type, at address: UInt64) -> T? {
        let size = MemoryLayout<T>.size
        if let (block, offset) = directRange(address, size, writing: false), let v = block.load(offset: offset, size: size) {
            return T(truncatingIfNeeded: v)
        }
        return try? load(T.self, at: address)
    }

    /// Stores a little-endian integer; false when it is not writable guest RAM.
    @inline(__always)
    func storeDirect<T: FixedWidthInteger & UnsignedInteger>(_ value: T, at address: UInt64) -> Bool {
        let size = MemoryLayout<T>.size
        if let (block, offset) = directRange(address, size, writing: true) {
            return block.store(offset: offset, value: UInt64(truncatingIfNeeded: value), size: size)
        }
        return (try? store(value, at: address)) != nil
    }

    /// Copies `bytes` to `address`; false (nothing written) when the range is not all
    /// writable RAM. One bulk copy when one range holds it (the usual case).
    func writeDirect(_ bytes: ArraySlice<UInt8>, at address: UInt64) -> Bool {
        guard !bytes.isEmpty else { return true }
        if let (block, offset) = directRange(address, bytes.count, writing: true) {
            return block.write(bytes, offset: offset)
        }
        return (try? write(bytes, at: address)) != nil
    }

    /// Copies `count` bytes at `address` into `buffer[index...]`; false (buffer unchanged in
    /// meaning) when the range is not all RAM. Eight bytes per load: `RAMBlock` offers no
    /// bulk read into a caller's buffer (see the note in VirtIONet's documentation).
    func readDirect(at address: UInt64, count: Int, into buffer: inout [UInt8], at index: Int) -> Bool {
        guard count > 0 else { return count == 0 }
        guard index >= 0, index <= buffer.count, count <= buffer.count - index else { return false }
        guard let (block, offset) = directRange(address, count, writing: false) else {
            guard let bytes = try? read(at: address, count: count) else { return false }
            buffer.replaceSubrange(index..<(index + count), with: bytes)
            return true
        }
        var done = 0
        while done < count {
            let n = min(8, count - done)
            // offset + done is inside the block (checked for the whole range above).
            guard let v = block.load(offset: offset + UInt64(done), size: n) else { return false }
            for k in 0..<n { buffer[index + done + k] = UInt8(truncatingIfNeeded: v >> (8 * UInt64(k))) }
            done += n
        }
        return true
    }
}
