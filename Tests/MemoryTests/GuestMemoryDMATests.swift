import Testing
import VMMSys
@testable import Memory

/// The two guest-memory accessors: a loader's fills ROM, a device's (DMA) never writes it,
/// and neither traps or allocates on any guest-given address and length.
@Suite struct GuestMemoryDMATests {
    let system = MemorySystem()
    let root = MemoryRegion.container(name: "root", size: UInt128(1) << 64)
    let rom: MemoryRegion
    let space: AddressSpace

    /// RAM at [0, 0x1000), ROM at [0x1000, 0x2000), RAM mapped read-only at [0x2000, 0x3000),
    /// a device at [0x3000, 0x3100).
    init() throws {
        rom = try MemoryRegion.rom(name: "rom", size: 0x1000)
        root.addSubregion(try MemoryRegion.ram(name: "ram", size: 0x1000), at: 0)
        root.addSubregion(rom, at: 0x1000)
        let readOnlyRAM = try MemoryRegion.ram(name: "ro-ram", size: 0x1000)
        readOnlyRAM.setReadOnly(true)
        root.addSubregion(readOnlyRAM, at: 0x2000)
        root.addSubregion(dummyIO("dev", 0x100), at: 0x3000)
        space = AddressSpace(root: root, name: "m", system: system)
        try space.guestMemory.write([UInt8](repeating: 0x5a, count: 0x1000), at: 0x1000)   // "firmware"
    }

    @Test func loaderWritesFillROM() throws {
        let loader = space.guestMemory
        #expect(loader.romWrites == .fill)
        try loader.write([1, 2, 3], at: 0x1800)
        #expect(try loader.read(at: 0x17ff, count: 5) == [0x5a, 1, 2, 3, 0x5a])
        #expect(rom.ramBlock?.read(offset: 0x800, count: 3) == [1, 2, 3])
        try loader.store(UInt32(0xdead_beef), at: 0xffe)                   // across RAM and ROM
        #expect(try loader.load(UInt32.self, at: 0xffe) == 0xdead_beef)
    }

    /// QEMU's dma_memory_write() to ROM: the bytes are dropped and the result is an error
    /// (MEMTX_DECODE_ERROR); here the whole write is refused with `.readOnly`.
    @Test func dmaWriteToROMIsRefusedAndLeavesItUnchanged() throws {
        let dma = space.dmaMemory
        #expect(dma.romWrites == .refuse)
        #expect(throws: GuestMemoryError.readOnly(address: 0x1000)) { try dma.write([1, 2, 3, 4], at: 0x1000) }
        #expect(throws: GuestMemoryError.readOnly(address: 0x1fff)) { try dma.store(UInt8(7), at: 0x1fff) }
        #expect(throws: GuestMemoryError.readOnly(address: 0x2000)) { try dma.write([1], at: 0x2000) }   // read-only RAM too
        // A write from RAM into ROM writes nothing at all, not even its RAM part.
        try dma.write([0x11, 0x22], at: 0xffc)
        #expect(throws: GuestMemoryError.readOnly(address: 0x1000)) { try dma.write([9, 9, 9, 9, 9, 9], at: 0xffc) }
        #expect(try dma.read(at: 0xffc, count: 6) == [0x11, 0x22, 0, 0, 0x5a, 0x5a])
        #expect(rom.ramBlock?.read(offset: 0, count: 0x1000) == [UInt8](repeating: 0x5a, count: 0x1000))
        // DMA still reads ROM and writes RAM.
        #expect(try dma.load(UInt32.self, at: 0x1000) == 0x5a5a_5a5a)
        try dma.store(UInt64(0x0102_0304_0506_0708), at: 0xff8)
        #expect(try dma.load(UInt64.self, at: 0xff8) == 0x0102_0304_0506_0708)
        // The guest's own writes to ROM are dropped the same way by the address space.
        #expect(space.write(0x1000, value: 0, size: 4) == .decodeError)
        #expect(try dma.load(UInt32.self, at: 0x1000) == 0x5a5a_5a5a)
    }

    /// Guest-given ranges at the edges: errors, never a trap, never an allocation of the
    /// requested size before the range is known to be guest memory.
    @Test func hostileRangesAreErrorsNotTraps() throws {
        for mem in [space.guestMemory, space.dmaMemory] {
            #expect(throws: GuestMemoryError.notRAM(address: 0x3000)) { try mem.read(at: 0, count: Int.max) }
            #expect(throws: GuestMemoryError.overflow(address: UInt64.max - 100, count: Int.max)) { try mem.read(at: UInt64.max - 100, count: Int.max) }
            #expect(throws: GuestMemoryError.overflow(address: 0, count: -1)) { try mem.read(at: 0, count: -1) }
            #expect(throws: GuestMemoryError.overflow(address: UInt64.max, count: 2)) { try mem.read(at: UInt64.max, count: 2) }
            #expect(throws: GuestMemoryError.notRAM(address: UInt64.max)) { try mem.read(at: UInt64.max, count: 1) }
            #expect(throws: GuestMemoryError.notRAM(address: UInt64.max - 7)) { try mem.load(UInt64.self, at: UInt64.max - 7) }
            #expect(throws: GuestMemoryError.overflow(address: UInt64.max - 6, count: 8)) { try mem.store(UInt64(1), at: UInt64.max - 6) }
            #expect(throws: GuestMemoryError.notRAM(address: 0x3000)) { try mem.write([1, 2], at: 0x2fff + 1) }
            #expect(try mem.read(at: UInt64.max, count: 0) == [])
            try mem.write([], at: UInt64.max)
        }
    }

    /// An alias whose offset puts the target's bytes beyond its block is refused, not read.
    @Test func aliasOutsideItsTargetIsNotRAM() throws {
        let other = MemoryRegion.container(name: "other", size: UInt128(1) << 64)
        let ram = try MemoryRegion.ram(name: "small", size: 0x1000)
        other.addSubregion(MemoryRegion.alias(name: "window", target: ram, offset: 0x800, size: 0x1000), at: 0x10000)
        let mem = AddressSpace(root: other, name: "alias", system: system).dmaMemory
        try mem.write([1, 2], at: 0x10000)
        #expect(ram.ramBlock?.read(offset: 0x800, count: 2) == [1, 2])
        #expect(throws: GuestMemoryError.self) { try mem.read(at: 0x107ff, count: 2) }
    }
}

@Suite struct RAMBlockTests {
    @Test func boundsAreCheckedWithoutOverflow() throws {
        let b = try RAMBlock(size: 0x1000)
        #expect(b.contains(offset: 0, count: 0x1000) && !b.contains(offset: 1, count: 0x1000))
        #expect(!b.contains(offset: UInt64.max, count: 1) && !b.contains(offset: 0, count: -1))
        #expect(!b.contains(offset: 0x1000, count: Int.max) && b.contains(offset: 0x1000, count: 0))
        #expect(b.read(offset: UInt64.max, count: 1) == nil && b.read(offset: 0xfff, count: 2) == nil)
        #expect(!b.write([1, 2], offset: 0xfff) && !b.write([1], offset: UInt64.max))
        #expect(b.load(offset: 0xff9, size: 8) == nil && b.load(offset: 0, size: 9) == nil && b.load(offset: 0, size: 0) == nil)
        #expect(!b.store(offset: UInt64.max - 1, value: 1, size: 2) && !b.store(offset: 0, value: 1, size: 16))
        #expect(b.store(offset: 0xff8, value: 0x0102_0304_0506_0708, size: 8) && b.load(offset: 0xff8, size: 8) == 0x0102_0304_0506_0708)
    }

    @Test func absurdSizesAreRefused() {
        #expect(throws: SystemError.self) { try RAMBlock(size: UInt64.max) }
        #expect(throws: SystemError.self) { try RAMBlock(size: RAMBlock.maximumSize + 1) }
    }
}
