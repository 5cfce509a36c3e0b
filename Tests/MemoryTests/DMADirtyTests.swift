import Testing
import VMMSys
@testable import Memory

/// Userspace writes through `GuestMemory` (a device's DMA, a loader) are invisible to an
/// accelerator's dirty log, so they mark the pages themselves, for the clients logging the
/// region and only while they log. QEMU: `flatview_write_continue()` →
/// `invalidate_and_set_dirty()`, which marks `memory_region_get_dirty_log_mask(mr)`'s clients.
@Suite struct DMADirtyTests {
    let system = MemorySystem()
    let ram: MemoryRegion
    let space: AddressSpace

    /// 16 pages of RAM at 0x10000, a window on its pages 8..<12 at 0x40000, ROM at 0x80000.
    init() throws {
        let root = MemoryRegion.container(name: "root", size: UInt128(1) << 64)
        ram = try MemoryRegion.ram(name: "ram", size: 16 * 0x1000)
        root.addSubregion(ram, at: 0x10000)
        root.addSubregion(MemoryRegion.alias(name: "win", target: ram, offset: 0x8000, size: 0x4000), at: 0x40000)
        root.addSubregion(try MemoryRegion.rom(name: "rom", size: 0x1000), at: 0x80000)
        space = AddressSpace(root: root, name: "m", system: system)
    }

    func dirty(_ client: DirtyMemoryClient) -> [UInt64] {
        ram.snapshotAndClearDirty(offset: 0, size: 16 * 0x1000, client: client).dirtyOffsets.map { $0 / 0x1000 }
    }

    @Test func dmaWritesMarkOnlyWhileLogging() throws {
        let dma = space.dmaMemory
        try dma.write([1, 2, 3], at: 0x10000)
        ram.setDirtyLogging(true, client: .vga)
        #expect(dirty(.vga) == [])                                       // written before logging
        try dma.write([UInt8](repeating: 9, count: 0x1002), at: 0x12fff)  // pages 2, 3, 4
        try dma.store(UInt32(7), at: 0x40000 + 0x1ffe)                    // through the window: pages 9, 10
        #expect(dirty(.vga) == [2, 3, 4, 9, 10])
        #expect(dirty(.migration) == [])                                  // a client not logging
        #expect(dirty(.vga) == [])                                        // cleared
        ram.setDirtyLogging(false, client: .vga)
        try dma.write([1], at: 0x1f000)
        #expect(!ram.isDirty(offset: 0xf000, size: 1, client: .vga))
    }

    /// Global dirty logging marks the migration client; the loader's writes mark too; a refused
    /// write (DMA into ROM, or leaving RAM) marks nothing, as it writes nothing.
    @Test func loaderAndGlobalLoggingAndRefusals() throws {
        system.startGlobalDirtyLog()
        try space.guestMemory.write([5], at: 0x1e000)
        #expect(dirty(.migration) == [14])
        #expect(throws: GuestMemoryError.readOnly(address: 0x80000)) { try space.dmaMemory.write([1, 2], at: 0x7ffff + 1) }
        #expect(throws: GuestMemoryError.self) { try space.dmaMemory.write([1, 2], at: 0x1ffff) }   // leaves RAM
        #expect(dirty(.migration) == [])
        system.stopGlobalDirtyLog()
        try space.guestMemory.write([5], at: 0x1e000)
        #expect(dirty(.migration) == [])
    }

    /// The rendered mask decides (the one the accelerator logs with): a change not yet
    /// committed is not applied half-way.
    @Test func theCommittedMaskDecides() throws {
        system.withTransaction {
            ram.setDirtyLogging(true, client: .vga)
            try? space.dmaMemory.write([1], at: 0x11000)                   // inside the transaction
        }
        #expect(dirty(.vga) == [])
        try space.dmaMemory.write([1], at: 0x11000)
        #expect(dirty(.vga) == [1])
    }
}
