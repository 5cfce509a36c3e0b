import Devices
import Memory

/// fw_cfg as a guest drives it: 16-bit selector writes and byte reads of the legacy ports in
/// every width (0x510-0x51b, so accesses straddle into the DMA port), and DMA transfers whose
/// `FWCfgDmaAccess` descriptor (control, length, address — all hostile) the script writes
/// into guest RAM before ringing the doorbell, including descriptors and buffers outside RAM,
/// near 2^64 and overlapping each other.
///
/// Input: `u16` length + bytes of the RAM image (64 KiB at 0, the same at the top of the
/// address space), then ops until the input ends, each `u8` kind then operands.
///
/// Oracle: a model of the selected item and read offset (QEMU's `fw_cfg_select()`,
/// `fw_cfg_data_read()`): every data-port byte read must match it. For each DMA transfer whose
/// buffer lies in RAM, guest RAM afterwards must be exactly the item's bytes from the offset
/// (zeros past its end) at the buffer and the big-endian status 0 at the descriptor, and
/// nothing else changed; a transfer with the write bit, or a buffer not in RAM, must report
/// the error bit, and may have changed nothing outside its buffer and status word. READ wins
/// over WRITE, WRITE over SKIP, as QEMU decides. QEMU: `fw_cfg_dma_transfer()`.
func fuzzFwCfg(_ data: [UInt8]) throws(FuzzFailure) {
    try FwCfgFixture.shared.with { f throws(FuzzFailure) in try f.run(data) }
}

final class FwCfgFixture {
    static let shared = Fixture { FwCfgFixture() }
    static let name = FuzzTarget.fwcfg.rawValue
    static let ramSize: UInt64 = 0x10000
    static let highBase: UInt64 = 0 &- ramSize
    static let maxOps = 256
    static let unsetKey: UInt16 = 0x3fff

    let io: AddressSpace, memory: AddressSpace
    let low: RAMBlock, high: RAMBlock
    let fwCfg: FwCfg
    let dma: FwCfgDMA

    /// The selected item's bytes and read offset; nil while unknown (after a failed transfer).
    var model: (item: [UInt8], offset: Int)? = ([], 0)

    init() {
        let system = MemorySystem()
        let (memRoot, memory) = makeSpace("memory", size: UInt128(1) << 64, system: system)
        let (ioRoot, io) = makeSpace("io", size: 0x10000, system: system)
        let lowRAM = makeRAM("ram-low", Self.ramSize), highRAM = makeRAM("ram-high", Self.ramSize)
        memRoot.addSubregion(lowRAM, at: 0)
        memRoot.addSubregion(highRAM, at: Self.highBase)
        low = lowRAM.ramBlock!
        high = highRAM.ramBlock!
        self.io = io
        self.memory = memory
        fwCfg = FwCfg(ramSize: 128 << 20, cpus: 2, maxCPUs: 4)
        fwCfg.setKernel((0..<300).map { UInt8(truncatingIfNeeded: $0) }, address: 0x100000)
        fwCfg.setCommandLine("console=ttyS0 x=1", address: 0x20000)
        do {
            try fwCfg.addFile(name: "etc/e820", data: [UInt8](repeating: 0x5a, count: 40))
            try fwCfg.addFile(name: "bootorder", data: [])
            try fwCfg.addFile(name: "etc/big", data: (0..<70000).map { UInt8(truncatingIfNeeded: $0 &* 13) })
        } catch {
            fatalError("fuzz fixture: \(error)")
        }
        dma = FwCfgDMA(fwCfg: fwCfg, memory: memory.guestMemory)
        fwCfg.map(into: ioRoot)
        dma.map(into: ioRoot)
    }

    private func select(_ key: UInt16) { model = (fwCfg.item(key) ?? [], 0) }

    func run(_ data: [UInt8]) throws(FuzzFailure) {
        io.write(FwCfg.defaultBase, value: UInt64(Self.unsetKey), size: 2)     // as created: nothing selected
        io.write(FwCfgDMA.defaultPort, value: 0, size: 4)                    // address high half 0
        model = ([], 0)
        var input = FuzzInput(data)
        let image = input.bytes(Int(input.u16()))
        low.fill(with: image)
        high.fill(with: image)
        for _ in 0..<Self.maxOps where !input.isEmpty {
            let op = input.u8()
            switch op % 5 {
            case 0:     // selector write
                let key = input.u16()
                io.write(FwCfg.defaultBase, value: UInt64(key), size: 2)
                select(key)
            case 1:     // data byte read (port 0x511, or 0x510 which also reads data)
                let port = FwCfg.defaultBase + UInt64(op >> 7)
                let got = UInt8(truncatingIfNeeded: io.read(port, size: 1).value)
                if var m = model {
                    let want: UInt8 = m.offset < m.item.count ? m.item[m.offset] : 0
                    try require(got == want, Self.name, "data byte \(m.offset) read \(hex(got)), item has \(hex(want))")
                    if m.offset < m.item.count { m.offset += 1 }
                    model = m
                }
            case 2:     // any access to 0x510-0x51b in any width
                let port = FwCfg.defaultBase + UInt64(input.u8() % 12), size = accessSize(input.u8())
                if op & 0x80 != 0 { _ = io.read(port, size: size) } else { io.write(port, value: input.u64(), size: size) }
                model = nil     // not modelled: resynchronised by the next select
            case 3:     // DMA with a descriptor written into RAM first
                let at = op & 0x80 != 0 ? input.u64() : UInt64(input.u16())
                var control = input.u32()
                let length = input.u32()
                if KnownOpen.skip("fwcfg-read-write"), control & 0x02 != 0 { control &= ~0x10 }
                let address = op & 0x40 != 0 ? input.u64() : UInt64(input.u16())
                try dmaTransfer(descriptor: at, control: control, length: length, address: address)
            default:    // the doorbell rung at an address of the fuzzer's choice, as is
                let at = input.u64()
                io.write(FwCfgDMA.defaultPort, value: UInt64(UInt32(truncatingIfNeeded: at >> 32).byteSwapped), size: 4)
                io.write(FwCfgDMA.defaultPort + 4, value: UInt64(UInt32(truncatingIfNeeded: at).byteSwapped), size: 4)
                model = nil
            }
        }
    }

    /// Which RAM block and offset hold `[address, address + count)` entirely, if one does.
    private func ramPlace(_ address: UInt64, _ count: UInt64) -> (RAMBlock, Int)? {
        for (block, base) in [(low, UInt64(0)), (high, Self.highBase)] {
            let off = address &- base
            if off < Self.ramSize, count <= Self.ramSize - off { return (block, Int(off)) }
        }
        return nil
    }

    private func dmaTransfer(descriptor at: UInt64, control: UInt32, length: UInt32, address: UInt64) throws(FuzzFailure) {
        let g = memory.guestMemory
        let header = [control, length, UInt32(truncatingIfNeeded: address >> 32), UInt32(truncatingIfNeeded: address)]
            .flatMap { v in (0..<4).map { UInt8(truncatingIfNeeded: v >> (8 * (3 - $0))) } }
        guard (try? g.write(header, at: at)) != nil else {
            // No descriptor in RAM: nothing may change but (QEMU) an error status at `at`.
            let before = (low.contents, high.contents)
            ring(at)
            for (block, base, old) in [(low, UInt64(0), before.0), (high, Self.highBase, before.1)] {
                let now = block.contents
                for i in 0..<now.count where now[i] != old[i] {
                    try require(base &+ UInt64(i) &- at < 4, Self.name,
                                "a descriptor outside RAM at \(hex(at)) changed \(hex(base &+ UInt64(i)))")
                }
            }
            model = nil
            return
        }
        let before = (low: low.contents, high: high.contents)
        if control & 0x08 != 0 { select(UInt16(truncatingIfNeeded: control >> 16)) }
        // QEMU's precedence: READ, else WRITE, else SKIP; none of them moves nothing.
        let read = control & 0x02 != 0, write = !read && control & 0x10 != 0, skip = control & 0x04 != 0
        let moves = read || write || skip
        let place = ramPlace(address, UInt64(length))
        ring(at)
        let status = try? g.load(UInt32.self, at: at)
        let statusOK = status == 0, statusError = status == UInt32(1).byteSwapped

        // The bytes that may change: the status word and, for a read, the buffer.
        func allowed(_ a: UInt64) -> Bool { a &- at < 4 || (read && !write && a &- address < UInt64(length)) }
        for (block, base, old) in [(low, UInt64(0), before.low), (high, Self.highBase, before.high)] {
            let now = block.contents
            for i in 0..<now.count where now[i] != old[i] {
                try require(allowed(base &+ UInt64(i)), Self.name,
                            "DMA (control \(hex(control)), \(length) bytes to \(hex(address)), descriptor \(hex(at))) changed \(hex(base &+ UInt64(i)))")
            }
        }
        if write && moves && length > 0 {
            try require(statusError, Self.name, "a DMA write (items are read-only) reported status \(String(describing: status))")
            model = nil
            return
        }
        guard moves, length > 0 else {
            try require(statusOK, Self.name, "an empty DMA transfer reported status \(String(describing: status))")
            return
        }
        guard read, let (block, offset) = place, var m = model else {
            if read && place == nil { try require(statusError, Self.name, "a DMA read to \(hex(address)) + \(length) outside RAM reported success") }
            if !read, KnownOpen.skip("fwcfg-skip-wrap"), UInt64(length) > 0 &- address {
                model = nil
            } else if !read, var m = model {          // skip: no memory touched, the offset moves
                try require(statusOK, Self.name, "a DMA skip reported status \(String(describing: status))")
                m.offset = min(m.item.count, m.offset + Int(min(UInt64(length), UInt64(m.item.count))))
                model = m
            } else {
                model = nil
            }
            return
        }
        try require(statusOK, Self.name, "a DMA read of \(length) bytes into RAM at \(hex(address)) reported status \(String(describing: status))")
        // Expected buffer: the item from the offset, zeros past its end; then the status word.
        var want = [UInt8](repeating: 0, count: Int(length))
        let n = min(Int(length), max(0, m.item.count - m.offset))
        if n > 0 { want.replaceSubrange(0..<n, with: m.item[m.offset..<(m.offset + n)]) }
        m.offset += n
        model = m
        var got = block.read(offset: UInt64(offset), count: Int(length)) ?? []
        // Where the status word overlaps the buffer, the status (written last) wins.
        for k in 0..<4 {
            let a = at &+ UInt64(k)
            if a &- address < UInt64(length) { want[Int(a &- address)] = 0; got[Int(a &- address)] = 0 }
        }
        try require(got == want, Self.name, "DMA read of item bytes \(m.offset - n)..<\(m.offset) into \(hex(address)) wrote other bytes")
    }

    /// Rings the doorbell for a descriptor at `at` (address high then low half, big-endian).
    private func ring(_ at: UInt64) {
        io.write(FwCfgDMA.defaultPort, value: UInt64(UInt32(truncatingIfNeeded: at >> 32).byteSwapped), size: 4)
        io.write(FwCfgDMA.defaultPort + 4, value: UInt64(UInt32(truncatingIfNeeded: at).byteSwapped), size: 4)
    }
}
