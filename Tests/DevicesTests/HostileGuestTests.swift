import Dispatch
import Memory
import Synchronization
import TestSupport
import Testing
import VMMSys
@testable import Devices

/// Every port and MMIO byte of every device, written and read with every size and a spread of
/// values: nothing a guest does may trap. Seeded (`VMM_TEST_SEED` replays a run; every failure
/// names the seed); checked along the way: each read fits its width, and every 1000 accesses
/// the configuration mechanism still answers. And the MSI-X table written by two vCPUs at once:
/// the routes it asks for must balance the routes it gives back.
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

    /// Two vCPUs rewrite one MSI-X entry (message data, mask, unmask) at the same time, as the
    /// hostile guest's MSI-X storm does. Each unmasked entry may hold one route; every route
    /// the table connects must be disconnected again when it is replaced, however the two
    /// writers interleave. A table that lets two re-routings of one vector run at once
    /// connects twice and keeps only one: the other route (a KVM GSI route on the pc machine)
    /// is never given back. The controller holds its first connects until a second one is in
    /// flight (or 2 ms pass), so that interleaving happens every run rather than sometimes.
    @Test func concurrentEntryWritesBalanceRoutes() throws {
        let bus = TestBus()
        let controller = RouteCountingMSI(overlapFirst: 400)
        let msix = MSIX(vectors: 2, controller: controller, name: "msix")
        bus.memory.addSubregion(msix.region, at: 0xfe00_0000)
        msix.controlChanged(0x8000)                                  // enabled, function unmasked
        let entry0: UInt64 = 0xfe00_0000
        bus.memorySpace.write(entry0, value: 0xfee0_0000, size: 4)
        DispatchQueue.concurrentPerform(iterations: 2) { cpu in
            var rng = SystemRandomNumberGenerator()
            for _ in 0..<600 {
                switch UInt8.random(in: 0...2, using: &rng) {
                case 0: bus.memorySpace.write(entry0 + 8, value: UInt64.random(in: 0x60...0xef, using: &rng), size: 4)
                case 1: bus.memorySpace.write(entry0 + 12, value: 0, size: 4)
                default: bus.memorySpace.write(entry0 + 12, value: 1, size: 4)
                }
                // A vCPU runs guest code between two exits: ~50 µs here, as on this host.
                let next = ContinuousClock.now.advanced(by: .microseconds(50))
                while ContinuousClock.now < next {}
            }
            _ = cpu
        }
        // Quiet again: entry 0 unmasked (one route), entry 1 masked (none).
        bus.memorySpace.write(entry0 + 12, value: 0, size: 4)
        bus.memorySpace.write(entry0 + 16 + 12, value: 1, size: 4)
        #expect(controller.live == 1,
                "\(controller.live) routes connected and not given back for 1 unmasked vector (\(controller.connects) connects, \(controller.disconnects) disconnects, \(controller.overlapped) overlapping)")
    }
}

/// An MSI controller that counts the routes it hands out and gets back. Connects overlap on
/// purpose: the first `overlapFirst` of them wait (polling, 2 ms at most) for another connect
/// to be in flight, as two vCPUs' KVM routing ioctls overlap on the pc machine.
final class RouteCountingMSI: MSIController {
    private struct State {
        var live: [ObjectIdentifier: EventNotifier] = [:]
        var connects = 0, disconnects = 0, inFlight = 0, overlapped = 0
    }
    private let state = Mutex(State())
    private let overlapFirst: Int

    init(overlapFirst: Int) { self.overlapFirst = overlapFirst }

    var live: Int { state.withLock { $0.live.count } }
    var connects: Int { state.withLock { $0.connects } }
    var disconnects: Int { state.withLock { $0.disconnects } }
    var overlapped: Int { state.withLock { $0.overlapped } }

    func connect(address: UInt64, data: UInt32) -> EventNotifier? {
        guard let n = try? EventNotifier() else { return nil }
        let wait = state.withLock { s -> Bool in
            s.connects += 1
            s.inFlight += 1
            if s.inFlight > 1 { s.overlapped += 1 }
            return s.connects <= overlapFirst
        }
        if wait {
            var clock = ContinuousClock.now
            let deadline = clock.advanced(by: .milliseconds(2))
            while state.withLock({ $0.inFlight }) < 2 && clock < deadline { clock = ContinuousClock.now }
        }
        state.withLock { s in
            s.inFlight -= 1
            s.live[ObjectIdentifier(n)] = n                  // kept alive: identities stay unique
        }
        return n
    }

    func disconnect(_ notifier: EventNotifier) {
        state.withLock { s in
            if s.live.removeValue(forKey: ObjectIdentifier(notifier)) != nil { s.disconnects += 1 }
        }
    }

    func send(address: UInt64, data: UInt32) {}
}
