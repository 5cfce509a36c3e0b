/// A range of a region whose writes an accelerator may buffer and replay later, in order,
/// instead of exiting for each (coalesced MMIO/PIO). QEMU: `CoalescedMemoryRange`.
public struct CoalescedMemoryRange: Sendable, Equatable {
    /// Offset in the region. QEMU: `addr.start`.
    public let offset: UInt64
    /// Length in bytes, up to 2^64 (a whole region of that size). QEMU: `addr.size`.
    public let size: UInt128
}

/// Coalesced I/O: the memory API side. Listeners hear of every coalesced range as it becomes
/// visible in an address space (`coalescedIOAdd`, after the range's `regionAdd`) and as it
/// stops being visible (`coalescedIODel`, before `regionDel`); the accelerator registers them
/// with the kernel and installs a drain (`MemorySystem.setCoalescedMMIOFlush`) that dispatch
/// calls before reaching a region that must not overtake buffered writes.
/// QEMU: `memory_region_set_coalescing()` and its neighbours in softmmu/memory.c.
extension MemoryRegion {
    /// Coalesces the whole region, replacing any ranges. QEMU: `memory_region_set_coalescing()`.
    public func setCoalescing() {
        clearCoalescing()
        addCoalescingRange(CoalescedMemoryRange(offset: 0, size: size))
    }

    /// Coalesces `[offset, offset + size)` of the region, and makes the region itself drain
    /// the buffer before its callbacks run. Listeners of address spaces showing the region
    /// get `coalescedIOAdd` (Forward) for each part of it a flat range shows.
    /// QEMU: `memory_region_add_coalescing()`.
    public func addCoalescing(offset: UInt64, size: UInt64) {
        addCoalescingRange(CoalescedMemoryRange(offset: offset, size: UInt128(size)))
    }

    /// Drains the buffer, stops the region draining on access, and removes every coalesced
    /// range; listeners get `coalescedIODel` (Reverse) for each visible part.
    /// QEMU: `memory_region_clear_coalescing()`.
    public func clearCoalescing() {
        withLock {
            guard !coalescedList.isEmpty else { return }
            system?.flushCoalescedMMIO()
            flushCoalescedFlag.store(false, ordering: .releasing)
            while !coalescedList.isEmpty {
                let range = coalescedList.removeFirst()
                notifyCoalesced(range, adding: false)
            }
            system?.coalescedRegionCount -= 1
        }
    }

    /// The region's coalesced ranges, in the order added.
    public var coalescedRanges: [CoalescedMemoryRange] { withLock { coalescedList } }

    /// Makes dispatch drain the coalesced buffer before this region's callbacks run, so a
    /// read here sees every write buffered before it. QEMU: `memory_region_set_flush_coalesced()`.
    public func setFlushCoalesced() { flushCoalescedFlag.store(true, ordering: .releasing) }

    /// Stops that, unless the region has coalesced ranges of its own (which always drain).
    /// QEMU: `memory_region_clear_flush_coalesced()`.
    public func clearFlushCoalesced() {
        withLock {
            if coalescedList.isEmpty { flushCoalescedFlag.store(false, ordering: .releasing) }
        }
    }

    /// Whether dispatch drains the coalesced buffer before this region's callbacks.
    public var flushesCoalesced: Bool { flushCoalescedFlag.load(ordering: .acquiring) }

    private func addCoalescingRange(_ range: CoalescedMemoryRange) {
        withLock {
            if coalescedList.isEmpty { system?.coalescedRegionCount += 1 }
            coalescedList.append(range)
            notifyCoalesced(range, adding: true)
        }
        setFlushCoalesced()
    }

    /// Tells the listeners of every address space about `range` in each flat range showing
    /// this region (lock held). QEMU: `memory_region_update_coalesced_range()`.
    private func notifyCoalesced(_ range: CoalescedMemoryRange, adding: Bool) {
        guard let system else { return }
        for space in system.addressSpaces {
            for fr in space.currentMap.ranges where fr.region === self {
                space.notifyCoalesced(fr, range, adding: adding)
            }
        }
    }
}

extension AddressSpace {
    /// Coalesced ranges going away with `fr` (before its `regionDel`), to `listeners`
    /// (default: all of this space's). QEMU: `flat_range_coalesced_io_del()`.
    func coalescedDel(_ fr: FlatRange, to listeners: [any MemoryListener]? = nil) {
        guard system.coalescedRegionCount > 0 else { return }
        let to = listeners ?? self.listeners
        for range in fr.region.coalescedList { notify(to, fr, range, adding: false) }
    }

    /// Coalesced ranges arriving with `fr` (after its `regionAdd`), to `listeners` (default:
    /// all of this space's). QEMU: `flat_range_coalesced_io_add()`.
    func coalescedAdd(_ fr: FlatRange, to listeners: [any MemoryListener]? = nil) {
        guard system.coalescedRegionCount > 0 else { return }
        let to = listeners ?? self.listeners
        for range in fr.region.coalescedList { notify(to, fr, range, adding: true) }
    }

    /// One range added to or removed from a region `fr` shows, to all of this space's listeners.
    func notifyCoalesced(_ fr: FlatRange, _ range: CoalescedMemoryRange, adding: Bool) {
        notify(listeners, fr, range, adding: adding)
    }

    /// The part of `range` (region offsets) that `fr` shows, as absolute addresses, to
    /// `listeners`: Forward for add, Reverse for del. A part of 2^64 bytes (a whole-space
    /// range) is reported as length `UInt64.max`. QEMU: `flat_range_coalesced_io_notify()`.
    private func notify(_ listeners: [any MemoryListener], _ fr: FlatRange, _ range: CoalescedMemoryRange, adding: Bool) {
        guard !listeners.isEmpty else { return }
        let lo = max(UInt128(fr.offsetInRegion), UInt128(range.offset))
        let hi = min(UInt128(fr.offsetInRegion) + fr.size, UInt128(range.offset) + range.size)
        guard lo < hi else { return }
        let address = fr.start &+ (UInt64(lo) &- fr.offsetInRegion)
        let length = hi - lo > UInt128(UInt64.max) ? UInt64.max : UInt64(hi - lo)
        let section = MemoryRegionSection(fr, in: self)
        if adding {
            listeners.call(.forward) { $0.coalescedIOAdd(section, address: address, length: length) }
        } else {
            listeners.call(.reverse) { $0.coalescedIODel(section, address: address, length: length) }
        }
    }
}
