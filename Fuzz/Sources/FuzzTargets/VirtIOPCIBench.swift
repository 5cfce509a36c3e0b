import Devices
import Memory
import VirtIO
import VMMSys

/// A virtio device behind the modern virtio-pci transport on a PCI host, with 64 KiB of RAM at
/// guest address 0, a checking MSI controller and an I/O thread that is never started (the
/// script serves the queues itself, as the I/O thread would, so runs are deterministic). Built
/// once per fixture; `reset` puts it back as firmware left it, through the registers.
final class VirtIOPCIBench {
    static let ramSize: UInt64 = 0x10000

    let memory: AddressSpace
    let ram: RAMBlock
    let host: PCIHost
    let device: VirtIOPCI
    let msi = CheckingMSIController(connects: true)
    let ioThread: IOThread
    let config: PCIConfigSnapshot
    let msixCap: Int

    /// - Parameter attach: runs once the transport exists (a chardev attaching to its port).
    init(_ virtio: any VirtIODevice, attach: (VirtIOPCI, IOThread) throws -> Void = { _, _ in }) {
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
            ioThread = try IOThread()
            device = try VirtIOPCI(device: virtio, dma: memory.dmaMemory, msiController: msi,
                                   intx: .disconnected(), ioThread: ioThread, fastMMIO: false)
            try host.register(device, slot: 3)
            try attach(device, ioThread)
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

    /// Config space as created, BARs where firmware puts them, status 0 (virtio reset), every
    /// MSI-X vector masked with no message and nothing pending, doorbells cleared.
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

    /// MSI-X problems and the route count, as the virtio-pci target checks them.
    func checkMSI(_ target: String) throws(FuzzFailure) {
        for p in msi.takeProblems() { throw FuzzFailure(target, "MSI-X: \(p)") }
        try require(msi.liveCount <= device.msix?.vectorCount ?? 0, target,
                    "\(msi.liveCount) MSI routes for \(device.msix?.vectorCount ?? 0) vectors")
    }

    /// The device status register (read through the common configuration's own ops, so a
    /// script that moved BAR4 does not change the answer).
    var status: UInt8 { UInt8(truncatingIfNeeded: commonOps.read(0x14, 1)) }

    /// The common configuration structure's register ops (BAR4 + 0).
    lazy var commonOps: MemoryRegionOps = {
        for region in device.modernRegion.subregions where region.name == "virtio-pci-common" {
            if case .io(let ops) = region.kind { return ops }
        }
        fatalError("fuzz fixture: virtio-pci has no common configuration region")
    }()
}
