/// Dirty logging: which pages of a RAM region were written while a client logged.
///
/// Bits are set two ways: by writes that go through the memory API (dispatch of a vCPU's exit
/// to RAM, `setDirty`), and by the accelerator, whose `logSync` pulls the kernel's log for its
/// memory slots into `setDirty(bitmap:…)`. Readers sync first (`snapshotAndClearDirty` does),
/// then test and clear; clearing tells listeners (`logClear`) so a kernel that keeps pages
/// write-protected until told (KVM's manual dirty-log protection) re-protects exactly those.
/// QEMU: `memory_region_get_dirty()` and its neighbours in softmmu/memory.c.
extension MemoryRegion {
    /// Turns dirty logging for `client` on or off; listeners get `logStart`/`logStop` for the
    /// ranges showing this region at the next commit. QEMU: `memory_region_set_log()`.
    public func setDirtyLogging(_ on: Bool, client: DirtyMemoryClient) {
        setDirtyLogging(on, clientMask: client.mask)
    }

    /// The clients logging this region: those turned on with `setDirtyLogging`, plus migration
    /// for RAM while global dirty logging is on. QEMU: `memory_region_get_dirty_log_mask()`.
    public var dirtyLogMask: UInt8 {
        withLock {
            var mask = dirtyLogMaskStorage
            if dirtyBitmap != nil, system?.globalDirtyLogStorage == true { mask |= DirtyMemoryClient.migration.mask }
            return mask
        }
    }

    /// Whether `client` logs this region. QEMU: `memory_region_is_logging()`.
    public func isLogging(_ client: DirtyMemoryClient) -> Bool { dirtyLogMask & client.mask != 0 }

    /// Whether any page of `[offset, offset + size)` was written while `client` logged (false
    /// for regions without RAM). Does not sync. QEMU: `memory_region_get_dirty()`.
    public func isDirty(offset: UInt64, size: UInt64, client: DirtyMemoryClient) -> Bool {
        guard let bitmap = dirtyBitmap, let pages = bitmap.pageRange(offset: offset, size: size) else { return false }
        return bitmap.test(pages, client: client)
    }

    /// Marks `[offset, offset + size)` written, for every client logging this region (nothing
    /// when none does). QEMU: `memory_region_set_dirty()`.
    public func setDirty(offset: UInt64, size: UInt64) {
        guard let bitmap = dirtyBitmap, let pages = bitmap.pageRange(offset: offset, size: size) else { return }
        bitmap.set(pages, mask: dirtyLogMask)
    }

    /// Marks the pages an accelerator's dirty log reports: bit i (little-endian, 64 per word)
    /// stands for the page at `offset + i * dirtyPageSize` in this region, `pages` bits in all.
    /// As QEMU, the VGA client is always marked and migration while global dirty logging is
    /// on (the code client belongs to TCG). `offset` must be page-aligned (KVM slots are).
    /// QEMU: `cpu_physical_memory_set_dirty_lebitmap()` from `kvm_slot_sync_dirty_pages()`.
    public func setDirty(bitmap: [UInt64], offset: UInt64, pages: Int) {
        guard let dirty = dirtyBitmap, offset % dirtyPageSize == 0 else { return }
        var mask = DirtyMemoryClient.vga.mask
        if withLock({ system?.globalDirtyLogStorage == true }) { mask |= DirtyMemoryClient.migration.mask }
        dirty.set(bitmap: bitmap, firstPage: offset / dirtyPageSize, count: pages, mask: mask)
    }

    /// Clears `client`'s bits for `[offset, offset + size)` (whole pages), then tells listeners
    /// logging this region which part was cleared. Returns whether any page was dirty.
    /// QEMU: `memory_region_reset_dirty()` → `cpu_physical_memory_test_and_clear_dirty()`.
    @discardableResult
    public func resetDirty(offset: UInt64, size: UInt64, client: DirtyMemoryClient) -> Bool {
        guard let bitmap = dirtyBitmap, let pages = bitmap.pageRange(offset: offset, size: size) else { return false }
        let was = bitmap.copyAndClear(pages, client: client)
        clearDirtyLog(pages)
        return was.contains { $0 != 0 }
    }

    /// Syncs the accelerator's log for this region, then returns the dirty bits of the pages
    /// `[offset, offset + size)` touches for `client` and clears them (telling listeners).
    /// Deliberate difference: QEMU widens the snapshot and the clear to 64-page boundaries
    /// (`DIRTY_SNAPSHOT_ALIGN`), so pages next to the range lose their bits too; here exactly
    /// the pages the range touches are taken.
    /// QEMU: `memory_region_snapshot_and_clear_dirty()`.
    public func snapshotAndClearDirty(offset: UInt64, size: UInt64, client: DirtyMemoryClient) -> DirtyBitmapSnapshot {
        syncDirtyBitmap()
        guard let bitmap = dirtyBitmap, let pages = bitmap.pageRange(offset: offset, size: size) else {
            return DirtyBitmapSnapshot(start: offset & ~(dirtyPageSize - 1), pages: 0, words: [])
        }
        let words = bitmap.copyAndClear(pages, client: client)
        clearDirtyLog(pages)
        return DirtyBitmapSnapshot(start: pages.lowerBound * dirtyPageSize, pages: pages.count, words: words)
    }

    /// Asks every listener to pull the accelerator's log into this region's bitmap: `logSync`
    /// for each range showing this region with logging on, listener by listener in priority
    /// order. QEMU: `memory_region_sync_dirty_bitmap(mr)`.
    public func syncDirtyBitmap() {
        guard let system else { return }
        system.syncDirtyLog(only: self)
    }

    /// `logClear` for each range showing this region with logging on, narrowed to the pages
    /// cleared. QEMU: `memory_region_clear_dirty_bitmap()`.
    private func clearDirtyLog(_ pages: Range<UInt64>) {
        guard let system else { return }
        let start = UInt128(pages.lowerBound) * UInt128(dirtyPageSize)
        let end = UInt128(pages.upperBound) * UInt128(dirtyPageSize)
        system.lock.lock()
        defer { system.lock.unlock() }
        system.forEachListenerSpace { listener, space in
            for fr in space.currentMap.ranges where fr.dirtyLogMask != 0 && fr.region === self {
                let lo = max(UInt128(fr.offsetInRegion), start)
                let hi = min(UInt128(fr.offsetInRegion) + fr.size, end)
                guard lo < hi else { continue }
                let section = MemoryRegionSection(fr, in: space, narrowedTo: lo..<hi)
                listener.logClear(section)
            }
        }
    }
}

extension MemorySystem {
    /// Whether global dirty logging (for migration) is on.
    public var isGlobalDirtyLogging: Bool {
        lock.lock()
        defer { lock.unlock() }
        return globalDirtyLogStorage
    }

    /// Starts logging every RAM region for the migration client: listeners get
    /// `logGlobalStart`, then one commit re-renders with the migration bit on RAM ranges
    /// (so they get `logStart`). QEMU: `memory_global_dirty_log_start()`.
    public func startGlobalDirtyLog() {
        lock.lock()
        defer { lock.unlock() }
        guard !globalDirtyLogStorage else { return }
        globalDirtyLogStorage = true
        listeners.call(.forward) { $0.logGlobalStart() }
        withTransaction { updatePending = true }
    }

    /// Stops it: one commit without the migration bit (`logStop`), then `logGlobalStop`
    /// (Reverse). QEMU: `memory_global_dirty_log_stop()`.
    public func stopGlobalDirtyLog() {
        lock.lock()
        defer { lock.unlock() }
        guard globalDirtyLogStorage else { return }
        globalDirtyLogStorage = false
        withTransaction { updatePending = true }
        listeners.call(.reverse) { $0.logGlobalStop() }
    }

    /// `logSync` for every range with logging on, in every address space, listener by listener
    /// in priority order. QEMU: `memory_global_dirty_log_sync()`.
    public func syncDirtyLog() { syncDirtyLog(only: nil) }

    /// QEMU: `memory_region_sync_dirty_bitmap()` (nil: every region).
    func syncDirtyLog(only region: MemoryRegion?) {
        lock.lock()
        defer { lock.unlock() }
        forEachListenerSpace { listener, space in
            for fr in space.currentMap.ranges where fr.dirtyLogMask != 0 && (region == nil || fr.region === region) {
                listener.logSync(MemoryRegionSection(fr, in: space))
            }
        }
    }

    /// Each listener (in priority order) with each address space it listens to.
    func forEachListenerSpace(_ body: (any MemoryListener, AddressSpace) -> Void) {
        var seen = Set<ObjectIdentifier>()
        for listener in listeners where seen.insert(ObjectIdentifier(listener)).inserted {
            for space in addressSpaces where space.listeners.contains(where: { $0 === listener }) {
                body(listener, space)
            }
        }
    }
}
