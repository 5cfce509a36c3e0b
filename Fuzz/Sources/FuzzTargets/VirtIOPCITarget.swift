import Devices
import Memory
import VirtIO
import VMMSys

/// The modern virtio-pci transport (with virtio-rng behind it) driven by a hostile driver:
/// a script of MMIO accesses anywhere in BAR4 (common configuration, ISR, device
/// configuration, notify) and BAR1 (MSI-X table and PBA), config-space writes, and queue
/// service as the I/O thread runs it.
///
/// Input: `u16` length + bytes of a 64 KiB RAM image at guest address 0, then ops, each one
/// `u8` kind followed by its operands (see `run`).
///
/// Checks: the selected queue's size always reads 0 or a power of two the device accepts;
/// the ISR reads at most bits 0-1; MSI-X never disconnects a route it did not connect and
/// never holds more routes than it has vectors.
func fuzzVirtIOPCI(_ data: [UInt8]) throws(FuzzFailure) {
    try VirtIOPCIFixture.shared.with { f throws(FuzzFailure) in try f.run(data) }
}

final class VirtIOPCIFixture {
    static let shared = Fixture { VirtIOPCIFixture() }
    static let name = FuzzTarget.virtioPCI.rawValue
    static let ramSize: UInt64 = 0x10000
    static let maxOps = 256

    let memory: AddressSpace
    let ram: RAMBlock
    let host: PCIHost
    let device: VirtIOPCI
    let msi = CheckingMSIController(connects: true)
    let ioThread: IOThread
    let config: PCIConfigSnapshot
    let msixCap: Int

    init() {
        let system = MemorySystem()
        let (memRoot, memory) = makeSpace("memory", size: UInt128(1) << 64, system: system)
        let (ioRoot, _) = makeSpace("io", size: 0x10000, system: system)
        let ramRegion = makeRAM("ram", Self.ramSize)
        memRoot.addSubregion(ramRegion, at: 0)
        self.memory = memory
        ram = ramRegion.ramBlock!
        host = PCIHost(ioSpace: ioRoot, memorySpace: memRoot)
        host.map(into: ioRoot)
        do {
            ioThread = try IOThread()            // never started: queues are served by the script
            device = try VirtIOPCI(device: VirtIORNG(), dma: memory.guestMemory, msiController: msi,
                                   intx: .disconnected(), ioThread: ioThread, fastMMIO: false)
            try host.register(device, slot: 3)
        } catch {
            fatalError("fuzz fixture: \(error)")
        }
        config = PCIConfigSnapshot(device)
        var cap = Int(device.configRead(offset: 0x34, size: 1))
        while cap != 0, device.configRead(offset: cap, size: 1) != 0x11 { cap = Int(device.configRead(offset: cap + 1, size: 1)) }
        msixCap = cap
    }

    var bar1: UInt64 { device.barAddress(1) ?? 0 }
    var bar4: UInt64 { device.barAddress(4) ?? 0 }

    /// Back to a freshly assigned device: config space as created, BARs where firmware puts
    /// them, status 0 (virtio reset), every MSI-X vector masked with no message and nothing
    /// pending, doorbells cleared.
    func reset() {
        config.restore(device)
        host.assignBARs(mmioTop: 0xfec0_0000)
        memory.write(bar4 + VirtIOPCI.commonOffset + 0x14, value: 0, size: 1)
        device.configWrite(offset: msixCap + 2, value: 0x8000, size: 2)
        for v in 0..<UInt64(device.msix?.vectorCount ?? 0) {
            memory.write(bar1 + 16 * v + 12, value: 0, size: 4)          // unmask: a pending message goes out
            for field in 0..<UInt64(3) { memory.write(bar1 + 16 * v + 4 * field, value: 0, size: 4) }
            memory.write(bar1 + 16 * v + 12, value: 1, size: 4)
        }
        device.configWrite(offset: msixCap + 2, value: 0, size: 2)
        _ = memory.read(bar4 + VirtIOPCI.isrOffset, size: 1)
        for n in device.notifiers { n.testAndClear() }
        _ = msi.takeProblems()
        msi.resetCounts()
    }

    func run(_ data: [UInt8]) throws(FuzzFailure) {
        reset()
        var input = FuzzInput(data)
        ram.fill(with: input.bytes(Int(input.u16())))
        let dma = memory.guestMemory
        for _ in 0..<Self.maxOps where !input.isEmpty {
            switch input.u8() % 8 {
            case 0:     // common configuration write
                memory.write(bar4 + UInt64(input.u8() % 0x40), value: input.u64(), size: accessSize(input.u8()))
            case 1:     // any BAR4 read (common, ISR, device, notify)
                let offset = UInt64(input.u16() % 0x4000), size = accessSize(input.u8())
                let value = memory.read(bar4 + offset, size: size).value
                let view = memory.currentMap
                let shown = view.lookup(bar4 + offset).map { view.ranges[$0] }
                // Only where the ISR itself answers (another BAR may overlap BAR4).
                if bar4 != 0, offset >= VirtIOPCI.isrOffset, offset + UInt64(size) <= VirtIOPCI.deviceOffset,
                   let shown, shown.region.name == "virtio-pci-isr", shown.end >= UInt128(bar4 + offset) + UInt128(size) {
                    // Each ISR callback (at most 4 bytes wide) returns only bits 0-1.
                    try require(value & ~0x0000_0003_0000_0003 == 0, Self.name, "ISR read \(hex(value))")
                }
            case 2:     // any BAR4 write
                memory.write(bar4 + UInt64(input.u16() % 0x4000), value: input.u64(), size: accessSize(input.u8()))
            case 3:     // MSI-X table / PBA write
                memory.write(bar1 + UInt64(input.u16() % 0x1000), value: input.u64(), size: accessSize(input.u8()))
            case 4:     // MSI-X table / PBA read
                _ = memory.read(bar1 + UInt64(input.u16() % 0x1000), size: accessSize(input.u8()))
            case 5:     // config space write (BARs, command, MSI-X control, anything)
                device.configWrite(offset: Int(input.u8()), value: input.u32(), size: accessSize(input.u8()) & 7)
            case 6:     // the I/O thread serves a queue, as after a kick
                let q = input.below(device.queues.count)
                let status = memory.read(bar4 + VirtIOPCI.commonOffset + 0x14, size: 1).value
                if status & 4 != 0, status & 0x40 == 0, device.queues[q].isReady {
                    var budget = VirtQueueBudget.perWakeUp
                    _ = try? device.device.process(queue: q, device.queues[q], memory: dma, budget: &budget)
                }
            default:    // a kick that reached userspace
                memory.write(bar4 + VirtIOPCI.notifyOffset + UInt64(input.u8()) * 4, value: 0, size: 2)
            }
            try check()
        }
    }

    private func check() throws(FuzzFailure) {
        let common = bar4 + VirtIOPCI.commonOffset
        if bar4 != 0 {
            let select = memory.read(common + 0x16, size: 2).value
            let size = memory.read(common + 0x18, size: 2).value
            if Int(select) < device.queues.count {
                let max = UInt64(device.queues[Int(select)].maxSize)
                try require(size != 0 && size & (size - 1) == 0 && size <= max, Self.name,
                            "queue \(select) size reads \(size)")
            } else {
                try require(size == 0, Self.name, "absent queue \(select) has size \(size)")
            }
        }
        for p in msi.takeProblems() { throw FuzzFailure(Self.name, "MSI-X: \(p)") }
        try require(msi.liveCount <= device.msix?.vectorCount ?? 0, Self.name,
                    "\(msi.liveCount) MSI routes for \(device.msix?.vectorCount ?? 0) vectors")
    }
}
