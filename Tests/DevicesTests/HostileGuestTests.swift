import Memory
import Testing
@testable import Devices

/// Every port and MMIO byte of every device, written and read with every size and a spread of
/// values: nothing a guest does may trap. Seeded (`VMM_TEST_SEED` replays a run; every failure
/// names the seed); checked along the way: each read fits its width, and every 1000 accesses
/// the configuration mechanism still answers.
@Suite struct HostileGuestTests {
    @Test func randomAccessesNeverTrap() throws {
        let bus = TestBus()
        let uart = SerialPort(backend: CapturingSerialBackend(), irq: IRQRecorder().irq)
        uart.map(into: bus.io)
        ISADebugExit(iobase: 0xf4, iosize: 4) { _ in }.map(into: bus.io)
        let fw = FwCfg(ramSize: 1 << 30, cpus: 1)
        try fw.addFile(name: "etc/x", data: [1, 2, 3])
        fw.map(into: bus.io)
        CMOS(belowFourGiB: 1 << 30).map(into: bus.io)
        ACPIPMTimer().map(into: bus.io)
        PCTestDev(irqLines: [IRQRecorder().irq]).map(into: bus.io, memory: bus.memory)
        let host = PCIHost(ioSpace: bus.io, memorySpace: bus.memory)
        host.map(into: bus.io)
        try host.register(try PCITestDev(fastMMIO: true))
        host.assignBARs(mmioTop: 0xfec0_0000)

        let seed = SeededGenerator.seedFromEnvironment()
        var rng = SeededGenerator(seed: seed)
        func checkpoint(_ i: Int) {
            bus.outl(0xcf8, 0x8000_0000)
            #expect(bus.inl(0xcfc) == 0x1237_8086, "seed \(seed) (VMM_TEST_SEED=\(seed)), access \(i): host bridge id")
        }
        func fits(_ value: UInt64, _ size: Int, _ what: String) {
            #expect(size == 8 || value >> (8 * UInt64(size)) == 0, "seed \(seed), \(what): \(size)-byte read gave 0x\(String(value, radix: 16))")
        }
        let ports: [ClosedRange<UInt64>] = [0x3f0...0x400, 0xe0...0xf8, 0x70...0x72, 0x500...0x520,
                                            0x600...0x610, 0xcf8...0xd00, 0xc000...0xc100, 0x2000...0x2020]
        let values: [UInt64] = [0, 1, 2, 3, 0x7f, 0x80, 0xff, 0xffff, 0xffff_ffff, .max, 0x8000_0800, 0x8000_0810]
        for i in 0..<20_000 {
            if i % 1000 == 0 { checkpoint(i) }
            let r = ports.randomElement(using: &rng)!
            let port = UInt64.random(in: r, using: &rng)
            let size = [1, 2, 4, 8].randomElement(using: &rng)!
            let value = Bool.random(using: &rng) ? values.randomElement(using: &rng)! : UInt64.random(in: 0...UInt64.max, using: &rng)
            if Bool.random(using: &rng) {
                bus.ioSpace.write(port, value: value, size: size)
            } else {
                fits(bus.ioSpace.read(port, size: size).value, size, "port 0x\(String(port, radix: 16))")
            }
        }
        let mmio: [ClosedRange<UInt64>] = [0xfefff_000...0xff01_0008, 0xfebf_f000...0xfec0_0008, 0xffff_fff0...0xffff_ffff]
        for i in 0..<20_000 {
            if i % 1000 == 0 { checkpoint(20_000 + i) }
            let addr = UInt64.random(in: mmio.randomElement(using: &rng)!, using: &rng)
            let size = [1, 2, 4, 8].randomElement(using: &rng)!
            if Bool.random(using: &rng) {
                bus.memorySpace.write(addr, value: UInt64.random(in: 0...UInt64.max, using: &rng), size: size)
            } else {
                fits(bus.memorySpace.read(addr, size: size).value, size, "address 0x\(String(addr, radix: 16))")
            }
        }
        // Whatever happened, the config mechanism still answers.
        checkpoint(40_000)
    }
}
