import VMMSys
import Devices
import Memory
import VirtIO

/// PCI configuration space of every function on a pc-shaped bus 0 (i440FX host bridge, the
/// PIIX3 functions at 00:01, pci-testdev, virtio-rng-pci), reached as a guest reaches it:
/// configuration mechanism #1 on ports 0xcf8/0xcfc in every width and alignment, with BAR
/// reprogramming, decode toggling and accesses to wherever the BARs land.
///
/// Input: ops until the input ends, each `u8` kind then operands (see `run`).
///
/// Checks: a data-port read in a valid width returns exactly the addressed function's
/// `configRead` (or all ones with the enable bit clear, another bus, or no function);
/// read-only header bytes (IDs, class, header type, subsystem, capability pointer, interrupt
/// pin) never change; every mapped BAR is naturally aligned, non-zero, below 4 GiB and really
/// present in the memory or I/O tree at that address.
func fuzzPCIConfig(_ data: [UInt8]) throws(FuzzFailure) {
    try PCIConfigFixture.shared.with { f throws(FuzzFailure) in try f.run(data) }
}

final class PCIConfigFixture {
    static let shared = Fixture { PCIConfigFixture() }
    static let name = FuzzTarget.pciConfig.rawValue
    static let maxOps = 512
    static let readOnlyBytes = [0, 1, 2, 3, 8, 9, 0xa, 0xb, 0x2c, 0x2d, 0x2e, 0x2f, 0x34, 0x3d]

    let io: AddressSpace, memory: AddressSpace
    let host: PCIHost
    let testDev: PCITestDev
    let virtio: VirtIOPCI
    let ioThread: IOThread
    let functions: [(devfn: Int, device: PCIDevice, config: PCIConfigSnapshot)]

    init() {
        let system = MemorySystem()
        let (memRoot, memory) = makeSpace("memory", size: UInt128(1) << 64, system: system)
        let (ioRoot, io) = makeSpace("io", size: 0x10000, system: system)
        memRoot.addSubregion(makeRAM("ram", 0x10000), at: 0)
        self.memory = memory
        self.io = io
        host = PCIHost(ioSpace: ioRoot, memorySpace: memRoot)
        host.map(into: ioRoot)
        do {
            try host.register(PIIX3.isaBridge(), slot: 1, function: 0)
            try host.register(PIIX3.ide(), slot: 1, function: 1)
            try host.register(PIIX3.powerManagement(), slot: 1, function: 3)
            testDev = try PCITestDev(fastMMIO: false)
            try host.register(testDev, slot: 2)
            ioThread = try IOThread()
            virtio = try VirtIOPCI(device: VirtIORNG(), dma: memory.guestMemory,
                                   msiController: CheckingMSIController(connects: false),
                                   intx: .disconnected(), ioThread: ioThread, fastMMIO: false)
            try host.register(virtio, slot: 3)
        } catch {
            fatalError("fuzz fixture: \(error)")
        }
        functions = host.functions.map { ($0.slot << 3 | $0.function, $0.device, PCIConfigSnapshot($0.device)) }
    }

    /// Every function back to its created config space, then BARs assigned as firmware does;
    /// pci-testdev's test stopped, virtio reset, CONFIG_ADDRESS cleared.
    func reset() {
        host.assignBARs(mmioTop: 0xfec0_0000)
        if let bar0 = testDev.barAddress(0) { memory.write(bar0, value: 3, size: 1) }
        if let bar4 = virtio.barAddress(4) { memory.write(bar4 + VirtIOPCI.commonOffset + 0x14, value: 0, size: 1) }
        for f in functions { f.config.restore(f.device) }
        host.assignBARs(mmioTop: 0xfec0_0000)
        io.write(PCIHost.addressPort, value: 0, size: 4)
    }

    func run(_ data: [UInt8]) throws(FuzzFailure) {
        reset()
        var input = FuzzInput(data)
        for _ in 0..<Self.maxOps where !input.isEmpty {
            let op = input.u8()
            switch op % 8 {
            case 0:     // CONFIG_ADDRESS: a well-formed one (enable, devfn, register) or raw
                let raw = input.u32()
                let value = op & 0x80 != 0 ? raw : 0x8000_0000 | (raw & 0xfffc)
                io.write(PCIHost.addressPort, value: UInt64(value), size: 4)
            case 1:     // anything else at 0xcf8-0xcfb
                io.write(PCIHost.addressPort + UInt64(input.u8() & 3), value: UInt64(input.u32()), size: accessSize(input.u8()))
            case 2:     // data port read, checked against the addressed function
                let port = input.u8() & 3, size = accessSize(input.u8())
                let got = io.read(PCIHost.dataPort + UInt64(port), size: size).value
                if size <= 4, Int(port) % size == 0 {
                    let mask: UInt64 = size == 4 ? 0xffff_ffff : (1 << (8 * UInt64(size))) - 1
                    let want = expectedData(port: Int(port), size: size) & mask
                    try require(got & mask == want, Self.name,
                                "data port +\(port) size \(size) read \(hex(got)), config space says \(hex(want))")
                }
            case 3:     // data port write
                io.write(PCIHost.dataPort + UInt64(input.u8() & 3), value: UInt64(input.u32()), size: accessSize(input.u8()))
            case 4:     // direct config access at any offset and width (what the bridge passes on)
                let f = functions[input.below(functions.count)].device
                let offset = Int(Int16(bitPattern: input.u16()))
                if op & 0x80 != 0 { _ = f.configRead(offset: offset, size: Int(input.u8() % 9)) }
                else { f.configWrite(offset: offset, value: input.u32(), size: Int(input.u8() % 9)) }
            case 5:     // a guest access to where a BAR is now
                let f = functions[input.below(functions.count)].device
                let bar = input.below(6), offset = UInt64(input.u16()), size = accessSize(input.u8())
                if let at = f.barAddress(bar), let kind = f.bars[bar]?.kind {
                    let space = kind == .io ? io : memory
                    if op & 0x80 != 0 { _ = space.read(at &+ offset, size: size) }
                    else { space.write(at &+ offset, value: input.u64(), size: size) }
                }
            case 6:
                host.assignBARs(mmioTop: 0xfec0_0000)
            default:    // BAR sizing as firmware probes it: all ones, read back, restore
                let f = functions[input.below(functions.count)].device
                let reg = PCIDevice.Register.bar0 + 4 * input.below(6)
                let old = f.configRead(offset: reg, size: 4)
                f.configWrite(offset: reg, value: 0xffff_ffff, size: 4)
                _ = f.configRead(offset: reg, size: 4)
                f.configWrite(offset: reg, value: old, size: 4)
            }
            try check()
        }
    }

    private func expectedData(port: Int, size: Int) -> UInt64 {
        let addr = host.currentConfigAddress
        guard addr & 0x8000_0000 != 0, (addr >> 16) & 0xff == 0,
              let f = functions.first(where: { $0.devfn == Int((addr >> 8) & 0xff) }) else { return UInt64.max }
        return UInt64(f.device.configRead(offset: Int(addr & 0xfc) | port, size: size))
    }

    private func check() throws(FuzzFailure) {
        for f in functions {
            for i in Self.readOnlyBytes {
                let now = UInt8(truncatingIfNeeded: f.device.configRead(offset: i, size: 1))
                try require(now == f.config.bytes[i], Self.name,
                            "read-only byte \(hex(i)) of \(f.devfn >> 3).\(f.devfn & 7) changed to \(hex(now))")
            }
            for (i, bar) in f.device.bars.enumerated() {
                guard let bar, let at = f.device.barAddress(i) else { continue }
                let label = "\(f.devfn >> 3).\(f.devfn & 7) BAR\(i) at \(hex(at)) size \(hex(bar.size))"
                try require(at != 0 && at & (bar.size - 1) == 0 && at + bar.size <= 1 << 32, Self.name, "\(label) is misplaced")
                // An I/O BAR past 0xffff maps outside the 64 KiB port space, as on QEMU.
                guard bar.kind == .memory32 || at + bar.size <= 0x10000 else { continue }
                let space = bar.kind == .io ? io : memory
                try require(space.currentMap.lookup(at) != nil, Self.name, "\(label) is not in the address space")
            }
        }
    }
}
