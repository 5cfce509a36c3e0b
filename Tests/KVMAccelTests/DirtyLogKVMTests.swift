import Foundation
import KVM
import Memory
import TestSupport
import Testing
import VMMSys
@testable import KVMAccel

/// Dirty logging through KVM, end to end: the memory API's logging turns
/// `KVM_MEM_LOG_DIRTY_PAGES` on and off on the slots (QEMU: `kvm_log_start()`/`kvm_log_stop()`
/// → `kvm_slot_update_flags()`), a sync pulls `KVM_GET_DIRTY_LOG` into the region's bitmap
/// (`kvm_physical_sync_dirty_bitmap()`), and clearing re-arms the kernel's log
/// (`KVM_CLEAR_DIRTY_LOG` under manual protection: `kvm_log_clear()`; the legacy ioctl clears
/// as it reads). The guest writes known pages of a RAM region at 1 GiB that nothing else
/// touches; the memory API (`memory_region_snapshot_and_clear_dirty()`,
/// `memory_region_get_dirty()`) must then report exactly those pages.
@Suite(.enabled(if: TestHost.kvmAvailable, "requires read/write access to /dev/kvm"))
struct DirtyLogKVMTests {
    static let base: UInt64 = 0x4000_0000
    static let pages: UInt64 = 64
    static let page: UInt64 = 4096

    /// A TinyVM with a 64-page RAM region "logged" at 1 GiB.
    func machine(manual: Bool) throws -> (TinyVM, MemoryRegion) {
        let t = try TinyVM(manualDirtyLogProtection: manual)
        let logged = try MemoryRegion.ram(name: "logged", size: Self.pages * Self.page)
        t.root.addSubregion(logged, at: Self.base)
        return (t, logged)
    }

    /// Runs the guest storing `value` at each address.
    func guestStores(_ t: TinyVM, _ addresses: [UInt64], value: UInt64) throws {
        let reason = try t.run(GuestCode.storeToEachAddress, data: GuestCode.addressTable(addresses), rax: value,
                               rsi: TinyVM.dataAddress)
        #expect(reason == .halted)
    }

    func dirtyPages(_ r: MemoryRegion) -> [UInt64] {
        r.snapshotAndClearDirty(offset: 0, size: Self.pages * Self.page, client: .vga).dirtyOffsets.map { $0 / Self.page }
    }

    @Test(arguments: [true, false])
    func guestWritesReadBackAsExactlyThosePages(manual: Bool) throws {
        let (t, logged) = try machine(manual: manual)
        #expect(t.accelerator.manualDirtyLogProtection == (manual && t.kvm.checkExtension(KVMCapability.manualDirtyLogProtect2) & 1 != 0))
        logged.setDirtyLogging(true, client: .vga)
        // Pages 0, 3, 17, 63: at a page start, inside, a 4-byte store ending on a page's last
        // byte, and the region's last page.
        try guestStores(t, [Self.base + 0x10, Self.base + 3 * Self.page + 0x100, Self.base + 18 * Self.page - 4,
                            Self.base + 63 * Self.page], value: 0x5a5a_0001)
        // memory_region_get_dirty() does not sync: nothing is known before a sync.
        #expect(!logged.isDirty(offset: 0, size: Self.pages * Self.page, client: .vga))
        logged.syncDirtyBitmap()
        #expect(logged.isDirty(offset: 17 * Self.page, size: 1, client: .vga))
        #expect(!logged.isDirty(offset: 16 * Self.page, size: Self.page, client: .vga))
        #expect(dirtyPages(logged) == [0, 3, 17, 63])
        // The data landed where the guest put it.
        #expect(try t.memory.guestMemory.load(UInt32.self, at: Self.base + 18 * Self.page - 4) == 0x5a5a_0001)
        // Cleared: none until the guest writes again (the sync inside the snapshot finds none).
        #expect(dirtyPages(logged) == [])
        // New writes, one to a page reported before (its logging was re-armed by the clear).
        try guestStores(t, [Self.base + 5 * Self.page, Self.base + 17 * Self.page + 8], value: 2)
        #expect(dirtyPages(logged) == [5, 17])
        #expect(dirtyPages(logged) == [])
        // The low RAM (code, page tables) never logged.
        #expect(!t.low.isDirty(offset: 0, size: 1 << 20, client: .vga))
    }

    /// The slot flag is what the kernel has: KVM_GET_DIRTY_LOG answers ENOENT for a slot that
    /// does not log. Logging starts with the first client and stops with the last (QEMU's
    /// `old != 0` / `new != 0` early returns); the log is pulled before the flag drops.
    @Test func logStartAndStopSetTheSlotFlagInTheKernel() throws {
        let (t, logged) = try machine(manual: true)
        let slot = try #require(t.slot(at: Self.base))
        #expect(!slot.logDirtyPages)
        #expect(throws: SystemError(operation: "KVM_GET_DIRTY_LOG", arguments: "slot=\(slot.slot) pages=64", errno: ENOENT)) {
            _ = try t.vm.getDirtyLog(slot: slot.slot)
        }
        try guestStores(t, [Self.base + 2 * Self.page], value: 1)      // before logging: never reported

        logged.setDirtyLogging(true, client: .vga)
        #expect(t.slot(at: Self.base)?.logDirtyPages == true)
        #expect(try t.vm.getDirtyLog(slot: slot.slot) == [0])           // logging, nothing written yet
        logged.setDirtyLogging(true, client: .migration)                // a second client: no change
        #expect(t.slot(at: Self.base)?.logDirtyPages == true)
        logged.setDirtyLogging(false, client: .vga)                     // one client left: still logging
        #expect(t.slot(at: Self.base)?.logDirtyPages == true)
        try guestStores(t, [Self.base + 9 * Self.page], value: 1)
        logged.setDirtyLogging(false, client: .migration)               // the last: the flag drops
        #expect(t.slot(at: Self.base)?.logDirtyPages == false)
        #expect(throws: SystemError.self) { _ = try t.vm.getDirtyLog(slot: slot.slot) }
        // Page 9, written while logging and never synced, was pulled as the flag dropped
        // (QEMU drops it). The sync bitmap marks the VGA client, as QEMU's does.
        #expect(logged.isDirty(offset: 9 * Self.page, size: 1, client: .vga))
        #expect(!logged.isDirty(offset: 2 * Self.page, size: 1, client: .vga))
        // The low RAM never logged.
        #expect(t.slot(at: 0)?.logDirtyPages == false)
    }

    /// Global dirty logging (migration) puts the flag on every RAM slot and takes it off again.
    @Test func globalDirtyLogFlagsEveryRAMSlot() throws {
        let (t, logged) = try machine(manual: true)
        t.system.startGlobalDirtyLog()
        #expect(t.accelerator.memorySlots.allSatisfy(\.logDirtyPages) && t.accelerator.memorySlots.count == 2)
        try guestStores(t, [Self.base + 7 * Self.page], value: 1)
        let snap = logged.snapshotAndClearDirty(offset: 0, size: Self.pages * Self.page, client: .migration)
        #expect(snap.dirtyOffsets == [7 * Self.page])
        // RAM mapped while logging gets a logging slot from the start.
        let late = try MemoryRegion.ram(name: "late", size: 4 * Self.page)
        t.root.addSubregion(late, at: 0x6000_0000)
        #expect(t.slot(at: 0x6000_0000)?.logDirtyPages == true)
        try guestStores(t, [0x6000_0000 + 3 * Self.page], value: 1)
        #expect(late.snapshotAndClearDirty(offset: 0, size: 4 * Self.page, client: .migration).dirtyOffsets == [3 * Self.page])
        t.system.stopGlobalDirtyLog()
        #expect(t.accelerator.memorySlots.allSatisfy { !$0.logDirtyPages } && t.accelerator.memorySlots.count == 3)
    }

    /// A device's DMA (GuestMemory) is invisible to the kernel's log: it marks the pages itself,
    /// only while a client logs. QEMU: `invalidate_and_set_dirty()` with the region's log mask.
    @Test func dmaWritesMarkDirtyOnlyWhileLogging() throws {
        let (t, logged) = try machine(manual: true)
        let dma = t.memory.dmaMemory
        try dma.write([1, 2, 3], at: Self.base + 4 * Self.page)         // not logging
        logged.setDirtyLogging(true, client: .vga)
        #expect(dirtyPages(logged) == [])
        try dma.write([UInt8](repeating: 7, count: 2), at: Self.base + 11 * Self.page - 1)   // pages 10 and 11
        try dma.store(UInt64(9), at: Self.base + 40 * Self.page)
        try guestStores(t, [Self.base + 20 * Self.page], value: 3)      // and the guest's own
        #expect(dirtyPages(logged) == [10, 11, 20, 40])
        logged.setDirtyLogging(false, client: .vga)
        try dma.write([1], at: Self.base + 30 * Self.page)
        #expect(!logged.isDirty(offset: 30 * Self.page, size: 1, client: .vga))
    }

    /// Unmapping a logging slot pulls its log first. QEMU: the removal half of
    /// `kvm_set_phys_mem()`.
    @Test func removingALoggingSlotKeepsItsLog() throws {
        let (t, logged) = try machine(manual: true)
        logged.setDirtyLogging(true, client: .vga)
        try guestStores(t, [Self.base + 33 * Self.page], value: 1)
        t.root.removeSubregion(logged)
        #expect(t.slot(at: Self.base) == nil)
        #expect(logged.isDirty(offset: 33 * Self.page, size: 1, client: .vga))
        #expect(!logged.isDirty(offset: 0, size: 33 * Self.page, client: .vga))
    }
}
