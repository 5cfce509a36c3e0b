import Memory
import Testing
@testable import Devices

/// fw_cfg DMA descriptors a hostile guest writes: addresses and lengths near 2^64 and 2^32,
/// descriptors straddling the end of RAM, huge reads past an item's end. Each ends with the
/// error bit (where QEMU sets it) and the counted, rate-limited failure — never a trap, and
/// never seconds of work. QEMU: `fw_cfg_dma_transfer()`.
@Suite struct FwCfgDMAHostileTests {
    static let ramSize: UInt64 = 0x40000

    let system = MemorySystem()
    let io = MemoryRegion.container(name: "io", size: 0x10000)
    let memRoot = MemoryRegion.container(name: "system", size: UInt128(1) << 64)

    func make() throws -> (io: AddressSpace, guest: GuestMemory, fw: FwCfg, dma: FwCfgDMA) {
        memRoot.addSubregion(try MemoryRegion.ram(name: "ram", size: Self.ramSize), at: 0)
        let memory = AddressSpace(root: memRoot, name: "memory", system: system)
        let fw = FwCfg(ramSize: Self.ramSize, cpus: 1)
        fw.map(into: io)
        let dma = FwCfgDMA(fwCfg: fw, memory: memory.guestMemory)
        dma.map(into: io)
        return (AddressSpace(root: io, name: "I/O", system: system), memory.guestMemory, fw, dma)
    }

    func descriptor(_ g: GuestMemory, at: UInt64, control: UInt32, length: UInt32, address: UInt64) throws {
        var b: [UInt8] = []
        for v in [control, length] { b += (0..<4).map { UInt8(truncatingIfNeeded: v >> (24 - 8 * UInt32($0))) } }
        b += (0..<8).map { UInt8(truncatingIfNeeded: address >> (56 - 8 * UInt64($0))) }
        try g.write(b, at: at)
    }

    /// The guest's two 32-bit big-endian writes: high half at 0x514, low half (starts) at 0x518.
    func start(_ space: AddressSpace, _ at: UInt64) {
        space.write(0x514, value: UInt64(UInt32(at >> 32).byteSwapped), size: 4)
        space.write(0x518, value: UInt64(UInt32(truncatingIfNeeded: at).byteSwapped), size: 4)
    }

    func control(_ g: GuestMemory, _ at: UInt64) throws -> [UInt8] { try g.read(at: at, count: 4) }

    static let select = UInt32(0x08), read = UInt32(0x02), skip = UInt32(0x04), write = UInt32(0x10)
    static let errorWord: [UInt8] = [0, 0, 0, 1]

    @Test func descriptorNearTopOfAddressSpace() throws {
        let (space, _, _, dma) = try make()
        for at: UInt64 in [UInt64.max - 7, UInt64.max - 15, UInt64.max, 0xffff_ffff_0000_0000] {
            start(space, at)
        }
        #expect(dma.failedTransfers == 4)
    }

    /// QEMU stores the error bit in a descriptor it could not read whole: here the 16 bytes
    /// straddle the end of RAM, the control word itself is RAM.
    @Test func descriptorStraddlingEndOfRAMGetsTheErrorBit() throws {
        let (space, g, _, dma) = try make()
        let at = Self.ramSize - 8
        try g.write([0, 0, 0, 2, 0, 0, 0, 4], at: at)
        start(space, at)
        #expect(try control(g, at) == Self.errorWord)
        #expect(dma.failedTransfers == 1)
    }

    @Test func destinationWrappingPast2To64WritesNothing() throws {
        let (space, g, _, dma) = try make()
        for (length, address) in [(UInt32.max, UInt64.max - 0x100), (UInt32(16), UInt64.max - 4), (UInt32(2), UInt64.max)] {
            try descriptor(g, at: 0x100, control: Self.select | Self.read, length: length, address: address)
            start(space, 0x100)
            #expect(try control(g, 0x100) == Self.errorWord, "length \(length) at \(address)")
        }
        // One byte at the very last address is no wrap: it fails only because nothing is RAM there.
        try descriptor(g, at: 0x100, control: Self.select | Self.read, length: 1, address: UInt64.max)
        start(space, 0x100)
        #expect(try control(g, 0x100) == Self.errorWord)
        #expect(dma.failedTransfers == 4)
    }

    /// A 4 GiB read of a 4-byte item into RAM: the item's bytes land, then zeros as QEMU's
    /// dma_memory_set() writes them, up to where RAM ends, where the error bit is set.
    @Test func hugeReadPastItemEndZeroFillsUntilRAMEnds() throws {
        let (space, g, _, dma) = try make()
        let ramEnd = try #require((0..<64).map { UInt64($0) << 16 }.first { (try? g.read(at: $0, count: 1)) == nil })
        try g.write([UInt8](repeating: 0xee, count: Int(ramEnd - 0x1000)), at: 0x1000)
        try descriptor(g, at: 0x100, control: Self.select | Self.read, length: 0xffff_ffff, address: 0x1000)
        start(space, 0x100)
        let back = try g.read(at: 0x1000, count: Int(ramEnd - 0x1000))
        #expect(Array(back.prefix(4)) == Array("QEMU".utf8))
        #expect(back.dropFirst(4).allSatisfy { $0 == 0 })
        #expect(try control(g, 0x100) == Self.errorWord)
        #expect(dma.failedTransfers == 1)
        // A read that fits: the item, then zeros, no error.
        try g.write([UInt8](repeating: 0xee, count: 0x20000), at: 0x1000)
        try descriptor(g, at: 0x100, control: Self.select | Self.read, length: 0x10004, address: 0x1000)
        start(space, 0x100)
        #expect(try control(g, 0x100) == [0, 0, 0, 0])
        let fit = try g.read(at: 0x1000, count: 0x10005)
        #expect(Array(fit.prefix(4)) == Array("QEMU".utf8) && fit.dropFirst(4).dropLast().allSatisfy { $0 == 0 } && fit.last == 0xee)
    }

    @Test func hugeSkipThenReadStaysInTheItem() throws {
        let (space, g, _, dma) = try make()
        try descriptor(g, at: 0x100, control: Self.select | Self.skip, length: 0xffff_ffff, address: UInt64.max)
        start(space, 0x100)
        #expect(try control(g, 0x100) == [0, 0, 0, 0])               // SKIP touches no memory
        try g.write([0xee, 0xee], at: 0x200)
        try descriptor(g, at: 0x100, control: Self.read, length: 2, address: 0x200)
        start(space, 0x100)
        #expect(try g.read(at: 0x200, count: 2) == [0, 0])             // past the end: zeros
        #expect(dma.failedTransfers == 0)
    }

    /// QEMU tests READ before WRITE: both bits set is a read.
    @Test func readWinsOverWrite() throws {
        let (space, g, _, dma) = try make()
        try descriptor(g, at: 0x100, control: Self.select | Self.read | Self.write, length: 4, address: 0x200)
        start(space, 0x100)
        #expect(try g.read(at: 0x200, count: 4) == Array("QEMU".utf8))
        #expect(try control(g, 0x100) == [0, 0, 0, 0])
        try descriptor(g, at: 0x100, control: Self.select | Self.write | Self.skip, length: 4, address: 0x200)
        start(space, 0x100)
        #expect(try control(g, 0x100) == Self.errorWord)
        #expect(dma.failedTransfers == 1)
    }

    /// QEMU clears the latched high half after each transfer, so a later low-half write alone
    /// names a descriptor below 4 GiB.
    @Test func highHalfIsClearedAfterATransfer() throws {
        let (space, g, _, dma) = try make()
        space.write(0x514, value: UInt64(UInt32(1).byteSwapped), size: 4)
        space.write(0x518, value: UInt64(UInt32(0x100).byteSwapped), size: 4)    // 0x1_0000_0100: not RAM
        #expect(dma.failedTransfers == 1)
        try descriptor(g, at: 0x100, control: Self.select | Self.read, length: 4, address: 0x200)
        space.write(0x518, value: UInt64(UInt32(0x100).byteSwapped), size: 4)
        #expect(try g.read(at: 0x200, count: 4) == Array("QEMU".utf8))
        #expect(dma.failedTransfers == 1)
    }

    /// Item bytes that do not fit the destination RAM: a clean error, never a trap.
    @Test func itemRunsOffTheEndOfRAM() throws {
        let (space, g, fw, dma) = try make()
        fw.setItem(0x30, [UInt8](repeating: 0x5a, count: 0x30000))
        try descriptor(g, at: 0x100, control: 0x0030_0000 | Self.select | Self.read, length: 0x30000, address: Self.ramSize - 0x100)
        start(space, 0x100)
        #expect(try control(g, 0x100) == Self.errorWord)
        #expect(dma.failedTransfers == 1)
    }
}
