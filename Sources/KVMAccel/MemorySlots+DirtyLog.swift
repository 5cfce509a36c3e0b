import KVM
import Memory
import VMMSys
#if canImport(Glibc)
import Glibc
#endif

/// Dirty logging on the memory slots: `KVM_MEM_LOG_DIRTY_PAGES` follows the sections' dirty
/// log masks, `KVM_GET_DIRTY_LOG` pulls the kernel's log into the region's bitmap, and under
/// manual protection `KVM_CLEAR_DIRTY_LOG` re-arms exactly the pages the memory API cleared.
/// Kept apart from the slot bookkeeping in MemorySlots.swift.
/// QEMU: accel/kvm/kvm-all.c, `kvm_section_update_flags()`, `kvm_physical_sync_dirty_bitmap()`,
/// `kvm_physical_log_clear()`.
extension MemorySlots {
    /// The slot mapping exactly the aligned part of `section` (the one `add` created), if any.
    /// QEMU: `kvm_lookup_matching_slot()`.
    func slot(for section: MemoryRegionSection) -> Slot? {
        guard let (gpa, size, _) = Self.align(section) else { return nil }
        return state.withLock { st in st.slots.first { $0.guestAddress == gpa && $0.size == size } }
    }

    /// Sets `KVM_MEM_LOG_DIRTY_PAGES` on the section's slot when the section logs for any
    /// client, clears it when none does, re-registering the slot with its new flags (same
    /// slot, address and memory: the kernel allows a flags-only change). Does nothing when
    /// the flag already matches, or when the section has no slot (it is not mapped, so every
    /// access exits and is marked by dispatch). Before the flag is dropped the slot's log is
    /// pulled in: deliberate difference, QEMU's `kvm_slot_update_flags()` drops it unsynced
    /// and the writes since the last sync are lost. A refusal is a machine error.
    /// QEMU: `kvm_log_start()`/`kvm_log_stop()` → `kvm_section_update_flags()`.
    func updateLogging(_ section: MemoryRegionSection) {
        guard var s = slot(for: section) else { return }
        let on = section.dirtyLogMask != 0
        guard s.logDirtyPages != on else { return }
        if !on { pullLog(of: s) }
        s.logDirtyPages = on
        do {
            // SAFETY: the same slot, address, size and host memory as registered by `add`, whose
            // RAM block is still held in `blocks`; only the flags change.
            try unsafe vm.setUserMemoryRegion(slot: s.slot, flags: s.flags, guestPhysicalAddress: s.guestAddress,
                                              size: s.size, hostAddress: s.hostAddress)
        } catch {
            fail(section, s.guestAddress, s.size, "set flags on", .ioctl(error))
            return
        }
        state.withLock { st in
            if let i = st.slots.firstIndex(where: { $0.slot == s.slot }) { st.slots[i] = s }
            st.blocks[s.slot]?.reported = []
        }
    }

    /// Pulls the kernel's log for the section's slot into its region's bitmap.
    /// QEMU: `kvm_log_sync()` → `kvm_physical_sync_dirty_bitmap()`.
    func syncDirtyLog(_ section: MemoryRegionSection) {
        guard let s = slot(for: section), s.logDirtyPages else { return }
        pullLog(of: s)
    }

    /// `KVM_GET_DIRTY_LOG` for one slot, delivered to the region; under manual protection the
    /// reported pages are remembered until cleared. ENOENT (the slot does not log) is not an
    /// error, as in QEMU. QEMU: `kvm_slot_get_dirty_log()` + `kvm_slot_sync_dirty_pages()`.
    func pullLog(of s: Slot) {
        let bitmap: [UInt64]
        do {
            bitmap = try vm.getDirtyLog(slot: s.slot)
        } catch {
            if error.errno != ENOENT { errorLog.log({ logger.error("\($0)") }) { "\(error)" } }
            return
        }
        guard let backing = state.withLock({ st -> Backing? in
            if manualProtect { st.blocks[s.slot]?.reported = bitmap }
            return st.blocks[s.slot]
        }) else { return }
        // The slot starts on a page of its region (`add` maps only page-aligned host memory).
        guard bitmap.contains(where: { $0 != 0 }) else { return }
        backing.region.setDirty(bitmap: bitmap, offset: backing.regionOffset, pages: Int(clamping: s.size / dirtyPageSize))
    }

    /// Re-arms logging (`KVM_CLEAR_DIRTY_LOG`) for the pages of every slot that the section
    /// covers, but only for pages the last log reported: a page written since then and not
    /// yet pulled keeps its kernel bit, so nothing the memory API has not seen is cleared.
    /// The kernel wants the first page on a 64-page boundary and a length of whole 64 pages
    /// (or up to the slot's end), so the request is widened and the bitmap says which pages.
    /// A no-op without manual protection (`KVM_GET_DIRTY_LOG` cleared the log already).
    /// QEMU: `kvm_log_clear()` → `kvm_physical_log_clear()` → `kvm_log_clear_one_slot()`.
    func clearDirtyLog(_ section: MemoryRegionSection) {
        guard manualProtect, section.size > 0 else { return }
        let start = UInt128(section.offsetWithinAddressSpace)
        let end = start + section.size
        let slots = state.withLock { $0.slots.filter(\.logDirtyPages) }
        for s in slots {
            let lo = max(start, UInt128(s.guestAddress)), hi = min(end, UInt128(s.guestAddress) + UInt128(s.size))
            guard lo < hi else { continue }
            let slotPages = s.size / dirtyPageSize
            let first = UInt64((lo - UInt128(s.guestAddress)) / UInt128(dirtyPageSize))
            let last = min(slotPages, UInt64((hi - UInt128(s.guestAddress) + UInt128(dirtyPageSize) - 1) / UInt128(dirtyPageSize)))
            clear(slot: s, pages: first..<last, slotPages: slotPages)
        }
    }

    /// Clears the reported bits of `pages` in the kernel, in requests of at most 2^31 pages.
    private func clear(slot s: Slot, pages: Range<UInt64>, slotPages: UInt64) {
        let chunk: UInt64 = 1 << 31
        var from = pages.lowerBound & ~63
        while from < pages.upperBound {
            let to = min(from + chunk, slotPages, (pages.upperBound + 63) & ~63)
            let count = to - from
            // Take the reported bits of the wanted pages in [from, to) out of the record.
            let bits = state.withLock { st -> [UInt64]? in
                guard var reported = st.blocks[s.slot]?.reported, !reported.isEmpty else { return nil }
                var out = [UInt64](repeating: 0, count: Int((count + 63) / 64))
                var any = false
                for page in max(from, pages.lowerBound)..<min(to, pages.upperBound) {
                    let w = Int(page / 64), b = page % 64
                    guard w < reported.count, reported[w] >> b & 1 != 0 else { continue }
                    reported[w] &= ~(1 << b)
                    let i = page - from
                    out[Int(i / 64)] |= 1 << (i % 64)
                    any = true
                }
                st.blocks[s.slot]?.reported = reported
                return any ? out : nil
            }
            if let bits {
                do {
                    try vm.clearDirtyLog(slot: s.slot, firstPage: from, pages: UInt32(count), bitmap: bits)
                } catch where error.errno != ENOENT {
                    errorLog.log({ logger.error("\($0)") }) { "\(error)" }
                } catch {}
            }
            from = to
        }
    }
}
