import Memory
import Testing
@testable import Devices

@Suite struct FwCfgDMATests {
    let system = MemorySystem()
    let io = MemoryRegion.container(name: "io", size: 0x10000)
    let memRoot = MemoryRegion.container(name: "system", size: UInt128(1) << 64)

    func make() throws -> (AddressSpace, GuestMemory, FwCfg) {
        let (space, g, fw, _) = try makeWithDMA()
        return (space, g, fw)
    }

    func makeWithDMA() throws -> (AddressSpace, GuestMemory, FwCfg, FwCfgDMA) {
        memRoot.addSubregion(try MemoryRegion.ram(name: "ram", size: 0x10000), at: 0)
        let memory = AddressSpace(root: memRoot, name: "memory", system: system)
        let fw = FwCfg(ramSize: 0x10000, cpus: 2)
        fw.map(into: io)
        let dma = FwCfgDMA(fwCfg: fw, memory: memory.dmaMemory)
        dma.map(into: io)
        return (AddressSpace(root: io, name: "I/O", system: system), memory.guestMemory, fw, dma)
    }

    func descriptor(_ g: GuestMemory, at: UInt64, control: UInt32, length: UInt32, address: UInt64) throws {
        var b: [UInt8] = []
        for v in [control, length] { b += (0..<4).map { UInt8(truncatingIfNeeded: v >> (24 - 8 * UInt32($0))) } }
        b += (0..<8).map { UInt8(truncatingIfNeeded: address >> (56 - 8 * UInt64($0))) }
        try g.write(b, at: at)
    }

    /// The guest writes the descriptor's address big-endian: high half at 0x514, low at 0x518.
    func start(_ space: AddressSpace, _ at: UInt64) {
        space.write(0x514, value: UInt64(UInt32(at >> 32).byteSwapped), size: 4)
        space.write(0x518, value: UInt64(UInt32(truncatingIfNeeded: at).byteSwapped), size: 4)
    }

    @Test func signatureAndFeatureBit() throws {
        let (space, _, fw) = try make()
        #expect(space.read(0x514, size: 4).value == 0x554d_4551)           // bytes "QEMU"
        #expect(space.read(0x518, size: 4).value == 0x4746_4320)           // bytes " CFG"
        #expect(fw.item(FwCfg.Key.id) == [3, 0, 0, 0])
    }

    @Test func selectReadSkipAndZeroFill() throws {
        let (space, g, _) = try make()
        try descriptor(g, at: 0x100, control: 0x0000_0008 | 0x02, length: 6, address: 0x200)   // select 0 + read 6
        try g.write([UInt8](repeating: 0xee, count: 8), at: 0x200)
        start(space, 0x100)
        #expect(try g.read(at: 0x200, count: 8) == Array("QEMU".utf8) + [0, 0, 0xee, 0xee])    // past the end: zeros
        #expect(try g.load(UInt32.self, at: 0x100) == 0)                                       // control: done, no error
        try descriptor(g, at: 0x100, control: 0x0005_0008 | 0x04, length: 1, address: 0)       // select nb_cpus, skip 1
        start(space, 0x100)
        try descriptor(g, at: 0x100, control: 0x02, length: 1, address: 0x300)                 // then read 1
        start(space, 0x100)
        #expect(try g.read(at: 0x300, count: 1) == [0])                                        // high byte of 2
        try descriptor(g, at: 0x100, control: 0x0005_0008 | 0x02, length: 2, address: 0x300)
        start(space, 0x100)
        #expect(try g.load(UInt16.self, at: 0x300) == 2)
    }

    @Test func hostileDescriptorsReportErrorsNeverTrap() throws {
        let (space, g, _, dma) = try makeWithDMA()
        try descriptor(g, at: 0x100, control: 0x0000_0008 | 0x10, length: 4, address: 0x200)   // write: refused
        start(space, 0x100)
        #expect(try g.read(at: 0x100, count: 4) == [0, 0, 0, 1])
        try descriptor(g, at: 0x100, control: 0x02, length: 0xffff_ffff, address: 0xff00)     // runs off RAM
        start(space, 0x100)
        #expect(try g.read(at: 0x100, count: 4) == [0, 0, 0, 1])
        try descriptor(g, at: 0x100, control: 0x02, length: 16, address: UInt64.max - 4)       // wraps
        start(space, 0x100)
        #expect(try g.read(at: 0x100, count: 4) == [0, 0, 0, 1])
        #expect(dma.failedTransfers == 3)
        // A descriptor outside RAM: counted as a failure, and no RAM byte changes.
        let before = try g.read(at: 0, count: 0x10000)
        start(space, 0xdead_0000_0000)
        #expect(dma.failedTransfers == 4)
        #expect(try g.read(at: 0, count: 0x10000) == before)
        // A 1-byte write at 0x514 is not a valid access: it neither latches the high half nor
        // starts a transfer, so the descriptor below is fetched from 0x100, not 0x1_0000_0100.
        try descriptor(g, at: 0x100, control: 0x0000_0008 | 0x02, length: 4, address: 0x200)
        space.write(0x514, value: 0, size: 4)
        space.write(0x514, value: 1, size: 1)
        #expect(try g.read(at: 0x100, count: 4) == [0, 0, 0, 0x0a])                            // untouched so far
        space.write(0x518, value: UInt64(UInt32(0x100).byteSwapped), size: 4)
        #expect(try g.read(at: 0x100, count: 4) == [0, 0, 0, 0])                                // done, no error
        #expect(try g.read(at: 0x200, count: 4) == Array("QEMU".utf8))
        #expect(dma.failedTransfers == 4)
    }
}
