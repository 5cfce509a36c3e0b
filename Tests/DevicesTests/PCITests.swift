import Memory
import Synchronization
import Testing
import VMMSys
@testable import Devices

/// Records the ioeventfd diffs an accelerator would see.
final class EventfdRecorder: MemoryListener {
    private let log = Mutex<[(added: Bool, fd: MemoryRegionIoeventfd)]>([])
    var handlesEventfds: Bool { true }
    func eventfdAdd(_ ioeventfd: MemoryRegionIoeventfd, in addressSpace: AddressSpace) {
        log.withLock { $0.append((true, ioeventfd)) }
    }
    func eventfdDel(_ ioeventfd: MemoryRegionIoeventfd, in addressSpace: AddressSpace) {
        log.withLock { $0.append((false, ioeventfd)) }
    }
    var adds: [MemoryRegionIoeventfd] { log.withLock { $0.filter(\.added).map(\.fd) } }
    var dels: [MemoryRegionIoeventfd] { log.withLock { $0.filter { !$0.added }.map(\.fd) } }
    func clear() { log.withLock { $0 = [] } }
}

func configAddress(slot: Int, register: Int, bus: Int = 0, enable: Bool = true) -> UInt64 {
    (enable ? 0x8000_0000 : 0) | UInt64(bus) << 16 | UInt64(slot) << 11 | UInt64(register & 0xfc)
}

@Suite struct PCIHostTests {
    let bus = TestBus()
    let host: PCIHost

    init() {
        host = PCIHost(ioSpace: bus.io, memorySpace: bus.memory)
        host.map(into: bus.io)
    }

    func cfgRead(slot: Int, _ reg: Int, size: Int = 4) -> UInt64 {
        bus.outl(0xcf8, configAddress(slot: slot, register: reg))
        return bus.ioSpace.read(0xcfc + UInt64(reg & 3), size: size).value
    }

    func cfgWrite(slot: Int, _ reg: Int, _ v: UInt64, size: Int = 4) {
        bus.outl(0xcf8, configAddress(slot: slot, register: reg))
        bus.ioSpace.write(0xcfc + UInt64(reg & 3), value: v, size: size)
    }

    @Test func hostBridgeIdentity() {
        #expect(cfgRead(slot: 0, 0x00) == 0x1237_8086)
        #expect(cfgRead(slot: 0, 0x08) == 0x0600_0002)   // class 06 00 00, revision 2
        #expect(cfgRead(slot: 0, 0x02, size: 2) == 0x1237)
        #expect(cfgRead(slot: 0, 0x0b, size: 1) == 0x06)
        #expect(cfgRead(slot: 0, 0x0e, size: 1) == 0x00)
        #expect(bus.inl(0xcf8) == 0x8000_000c)            // the address register reads back
    }

    @Test func absentFunctionsReadAllOnes() {
        #expect(cfgRead(slot: 1, 0) == 0xffff_ffff)
        #expect(cfgRead(slot: 1, 0, size: 2) == 0xffff)
        bus.outl(0xcf8, configAddress(slot: 0, register: 0, bus: 1))
        #expect(bus.inl(0xcfc) == 0xffff_ffff)
        bus.outl(0xcf8, configAddress(slot: 0, register: 0, enable: false))
        #expect(bus.inl(0xcfc) == 0xffff_ffff)
        bus.outl(0xcf8, 0x8000_0800 | 1 << 8)            // 00:01.1
        #expect(bus.inl(0xcfc) == 0xffff_ffff)
        cfgWrite(slot: 7, 4, 0x7)                        // writes to nothing are dropped
    }

    @Test func partialWritesToAddressRegisterIgnored() {
        bus.outl(0xcf8, 0x8000_0000)
        bus.outb(0xcf8, 0x08)
        bus.outw(0xcfa, 0x1234)
        #expect(bus.inl(0xcf8) == 0x8000_0000)
    }

    @Test func registerAssignsSlots() throws {
        let a = try PCITestDev(), b = try PCITestDev()
        #expect(try host.register(a) == 1)
        #expect(try host.register(b, slot: 5) == 5)
        #expect(throws: PCIError.slotInUse(5)) { try host.register(PCIDevice(vendorID: 1, deviceID: 2, classCode: 0), slot: 5) }
        #expect(throws: PCIError.invalidSlot(32)) { try host.register(PCIDevice(vendorID: 1, deviceID: 2, classCode: 0), slot: 32) }
        #expect(cfgRead(slot: 1, 0) == 0x0005_1b36)
        #expect(cfgRead(slot: 5, 0x08) == 0x00ff_0000)
        #expect(cfgRead(slot: 5, 0x3c) & 0xff00 == 0)   // interrupt pin 0
        #expect(host.device(slot: 5) === b)
    }

    @Test func barSizing() throws {
        try host.register(try PCITestDev(), slot: 3)
        #expect(cfgRead(slot: 3, 0x10) == 0x0000_0000)
        #expect(cfgRead(slot: 3, 0x14) == 0x0000_0001)
        cfgWrite(slot: 3, 0x10, 0xffff_ffff)
        cfgWrite(slot: 3, 0x14, 0xffff_ffff)
        cfgWrite(slot: 3, 0x18, 0xffff_ffff)
        #expect(cfgRead(slot: 3, 0x10) == 0xffff_f000)
        #expect(cfgRead(slot: 3, 0x14) == 0xffff_ff01)
        #expect(cfgRead(slot: 3, 0x18) == 0)            // no BAR2
        cfgWrite(slot: 3, 0x00, 0xffff_ffff)            // ids are read-only
        #expect(cfgRead(slot: 3, 0x00) == 0x0005_1b36)
    }

    @Test func decodeBitsMapAndUnmapBARs() throws {
        let dev = try PCITestDev()
        try host.register(dev, slot: 2)
        cfgWrite(slot: 2, 0x10, 0xe000_0000)
        cfgWrite(slot: 2, 0x14, 0xc100)
        #expect(bus.memorySpace.read(0xe000_0000, size: 4).result == .decodeError)
        #expect(bus.ioSpace.read(0xc100, size: 1).result == .decodeError)
        #expect(dev.barAddress(0) == nil)
        cfgWrite(slot: 2, 0x04, 0x2, size: 2)           // memory only
        #expect(dev.barAddress(0) == 0xe000_0000 && dev.barAddress(1) == nil)
        #expect(bus.memorySpace.read(0xe000_0000, size: 4) == (0, .ok))   // device, no test: 0
        #expect(bus.ioSpace.read(0xc100, size: 1).result == .decodeError)
        cfgWrite(slot: 2, 0x04, 0x3, size: 2)
        #expect(bus.ioSpace.read(0xc100, size: 1) == (0, .ok))
        // Moving a BAR while decoding moves the mapping.
        cfgWrite(slot: 2, 0x10, 0xe010_0000)
        #expect(bus.memorySpace.read(0xe000_0000, size: 4).result == .decodeError)
        #expect(bus.memorySpace.read(0xe010_0000, size: 4).result == .ok)
        cfgWrite(slot: 2, 0x04, 0x0, size: 2)
        #expect(bus.memorySpace.read(0xe010_0000, size: 4).result == .decodeError)
        #expect(bus.ioSpace.read(0xc100, size: 1).result == .decodeError)
        #expect(dev.command == 0)
    }

    @Test func firmwareStyleAssignment() throws {
        let a = try PCITestDev(), b = try PCITestDev()
        try host.register(a)
        try host.register(b)
        let out = host.assignBARs(mmioTop: 0xfec0_0000)
        #expect(out.count == 4)
        // SeaBIOS: equal BARs in bus order, up from the window's base (QEMU 7.2 with two
        // pci-testdevs: 00:02.0 at 0xfebfd000, 00:03.0 at 0xfebfe000, as `info pci` shows).
        #expect(a.barAddress(0) == 0xfebf_e000 && b.barAddress(0) == 0xfebf_f000)
        #expect(a.barAddress(1) == 0xc000 && b.barAddress(1) == 0xc100)
        #expect(a.command & 0x3 == 0x3 && b.command & 0x3 == 0x3)
        #expect(host.bridge.command & 0x3 == 0)         // no BARs: left alone
        #expect(cfgRead(slot: 2, 0x10) == 0xfebf_f000)
        #expect(cfgRead(slot: 2, 0x14) == 0xc101)
        // Both devices answer: start portio no-eventfd on b through the I/O space.
        bus.outb(0xc100, 0)
        #expect(bus.inb(0xc100) == 3 && b.currentTest == 3 && a.currentTest == nil)
    }
}

@Suite struct PCITestDevTests {
    let bus = TestBus()
    let host: PCIHost
    let dev: PCITestDev
    let ioListener = EventfdRecorder()
    let memListener = EventfdRecorder()
    static let mmio: UInt64 = 0xfebf_f000
    static let port: UInt64 = 0xc000

    init() throws {
        host = PCIHost(ioSpace: bus.io, memorySpace: bus.memory)
        host.map(into: bus.io)
        dev = try PCITestDev()
        try host.register(dev)
        host.assignBARs(mmioTop: 0xfec0_0000)
        bus.ioSpace.register(ioListener)
        bus.memorySpace.register(memListener)
    }

    func header(io: Bool) -> [UInt8] {
        let base = io ? Self.port : Self.mmio
        let space = io ? bus.ioSpace : bus.memorySpace
        var out: [UInt8] = []
        for off in stride(from: 0 as UInt64, to: 40, by: 4) {
            let v = space.read(base + off, size: 4).value
            out += (0..<4).map { UInt8(truncatingIfNeeded: v >> (8 * UInt64($0))) }
        }
        return out
    }

    func count(io: Bool) -> UInt32 {
        let space = io ? bus.ioSpace : bus.memorySpace
        return UInt32(truncatingIfNeeded: space.read((io ? Self.port : Self.mmio) + 12, size: 4).value)
    }

    @Test func identityAndBARs() {
        #expect(dev.bars[0]! == (.memory32, 4096))
        #expect(dev.bars[1]! == (.io, 256))
        #expect(dev.tests.map(\.name) == ["mmio-no-eventfd", "mmio-wildcard-eventfd", "mmio-datamatch-eventfd",
                                          "portio-no-eventfd", "portio-wildcard-eventfd", "portio-datamatch-eventfd"])
        #expect(dev.tests.map(\.offset) == [2048, 2049, 2050, 131, 132, 133])
        #expect(dev.tests.map(\.data) == [0xfa, 0xce, 0xfa, 0xfa, 0xce, 0xfa])
        #expect(dev.tests.map(\.matchData) == [true, false, true, true, false, true])
    }

    @Test func noTestReadsZero() {
        #expect(header(io: true).allSatisfy { $0 == 0 })
        #expect(header(io: false).allSatisfy { $0 == 0 })
    }

    @Test func headerLayout() {
        bus.outb(Self.port, 2)                          // portio-datamatch-eventfd
        let h = header(io: true)
        #expect(Array(h[0..<16]) == [5, 1, 0, 0, 133, 0, 0, 0, 0xfa, 0, 0, 0, 0, 0, 0, 0])
        #expect(Array(h[16..<40]) == Array("portio-datamatch-eventfd".utf8))
        // The final NUL and everything beyond read as 0 (QEMU's addr + size >= bufsize rule).
        #expect(bus.inb(Self.port + 40) == 0)
        #expect(bus.inb(Self.port + 200) == 0)
        #expect(dev.header(ofTest: 5).count == 16 + 24 + 1)
    }

    @Test func noEventfdTestsCountWrites() {
        for (io, base, offset) in [(true, Self.port, 131 as UInt64), (false, Self.mmio, 2048)] {
            let space = io ? bus.ioSpace : bus.memorySpace
            space.write(base, value: 0, size: 4)        // a dword write of t: split, byte 0 starts it
            #expect(dev.currentTest == (io ? 3 : 0))
            for _ in 0..<5 { space.write(base + offset, value: 0xfa, size: 1) }
            space.write(base + offset + 1, value: 0xfa, size: 1)   // wrong offset: ignored
            space.write(base + offset, value: 0xce, size: 1)       // wrong value: not counted (QEMU)
            #expect(count(io: io) == 5)
            #expect(ioListener.adds.isEmpty && memListener.adds.isEmpty)
        }
        // Starting again resets the count.
        bus.outb(Self.port, 0)
        #expect(count(io: true) == 0)
    }

    @Test func wildcardEventfdTakesWritesInUserspace() throws {
        for (io, base, offset, test) in [(true, Self.port, 132 as UInt64, 4), (false, Self.mmio, 2049, 1)] {
            let space = io ? bus.ioSpace : bus.memorySpace
            space.write(base, value: 1, size: 1)
            let n = try #require(dev.tests[test].notifier)
            for v: UInt64 in [0, 0xce, 0x55] { space.write(base + offset, value: v, size: 1) }
            // The memory core signalled the eventfd; nothing reached the device.
            #expect(n.testAndClear() == 3)
            #expect(count(io: io) == 0)
            space.write(base + offset, value: 7, size: 1)
            space.write(base + offset, value: 7, size: 1)
            _ = space.read(base, size: 1)               // reading the header clears the counter
            #expect(n.testAndClear() == 0)
        }
        #expect(bus.ioSpace.counters.eventfdSignals == 5)
    }

    @Test func datamatchEventfdTakesOnlyMatchingWrites() throws {
        for (io, base, offset, test) in [(true, Self.port, 133 as UInt64, 5), (false, Self.mmio, 2050, 2)] {
            let space = io ? bus.ioSpace : bus.memorySpace
            space.write(base, value: 2, size: 1)
            let n = try #require(dev.tests[test].notifier)
            for _ in 0..<4 { space.write(base + offset, value: 0xfa, size: 1) }
            space.write(base + offset, value: 0x11, size: 1)   // reaches the device, wrong data
            #expect(n.testAndClear() == 4)
            #expect(count(io: io) == 0)
            #expect(dev.count(ofTest: test) == 0)
        }
    }

    @Test func datamatchCountsWhenAcceleratorWouldHandleIt() throws {
        // With an accelerator owning the ioeventfds, userspace only sees what KVM let through:
        // a matching write then reaches the device and is counted.
        bus.ioSpace.acceleratorHandlesIoeventfds = true
        bus.outb(Self.port, 2)
        bus.outb(Self.port + 133, 0xfa)
        bus.outb(Self.port + 133, 0xfb)
        #expect(count(io: true) == 1)
        #expect(dev.tests[5].notifier!.testAndClear() == 0)
    }

    @Test func switchingIsOneDelAndOneAdd() {
        bus.outb(Self.port, 1)
        #expect(ioListener.adds.count == 1 && ioListener.dels.isEmpty)
        #expect(ioListener.adds.first.map { ($0.start, $0.size, $0.matchData) } ?? (0, 0, true) == (Self.port + 132, 1, false))
        ioListener.clear()
        bus.outb(Self.port, 2)
        #expect(ioListener.dels.count == 1 && ioListener.adds.count == 1)
        #expect(ioListener.dels[0].start == Self.port + 132)
        #expect(ioListener.adds[0].start == Self.port + 133 && ioListener.adds[0].matchData && ioListener.adds[0].data == 0xfa)
        ioListener.clear()
        bus.outb(Self.port, 0)                          // to no-eventfd: only a del
        #expect(ioListener.dels.count == 1 && ioListener.adds.isEmpty)
        ioListener.clear()
        bus.outb(Self.port, 9)                          // t >= 3 with nothing running: nothing
        #expect(ioListener.dels.isEmpty && ioListener.adds.isEmpty && dev.currentTest == nil)
        // Switching from an I/O test to an MMIO test moves between address spaces.
        bus.outb(Self.port, 1)
        ioListener.clear()
        bus.memorySpace.write(Self.mmio, value: 2, size: 1)
        #expect(ioListener.dels.count == 1 && ioListener.adds.isEmpty)
        #expect(memListener.adds.count == 1 && memListener.dels.isEmpty)
        #expect(memListener.adds[0].start == Self.mmio + 2050)
    }

    @Test func movingTheBARMovesTheIoeventfd() throws {
        bus.memorySpace.write(Self.mmio, value: 1, size: 1)
        memListener.clear()
        let slot = 1
        bus.outl(0xcf8, configAddress(slot: slot, register: 0x10))
        bus.outl(0xcfc, 0xe000_0000)
        #expect(memListener.dels.map(\.start) == [Self.mmio + 2049])
        #expect(memListener.adds.map(\.start) == [0xe000_0000 + 2049])
        let n = try #require(dev.tests[1].notifier)
        bus.memorySpace.write(0xe000_0000 + 2049, value: 1, size: 1)
        bus.memorySpace.write(Self.mmio + 2049, value: 1, size: 1)   // old place: unassigned now
        #expect(n.testAndClear() == 1)
        // Disabling memory decode drops it; enabling brings it back.
        memListener.clear()
        bus.outl(0xcf8, configAddress(slot: slot, register: 0x04))
        bus.outw(0xcfc, 0x1)
        #expect(memListener.dels.count == 1 && memListener.adds.isEmpty)
        bus.outw(0xcfc, 0x3)
        #expect(memListener.adds.count == 1 && memListener.adds[0].start == 0xe000_0000 + 2049)
    }

    @Test func fastMMIOUsesAnyLengthEventfd() throws {
        let b = TestBus()
        let h = PCIHost(ioSpace: b.io, memorySpace: b.memory)
        let d = try PCITestDev(fastMMIO: true)
        try h.register(d)
        h.assignBARs(mmioTop: 0xfec0_0000)
        let rec = EventfdRecorder()
        b.memorySpace.register(rec)
        b.memorySpace.write(Self.mmio, value: 1, size: 1)
        #expect(rec.adds.count == 1 && rec.adds[0].size == 0 && !rec.adds[0].matchData)
        b.memorySpace.write(Self.mmio + 2049, value: 0x12, size: 1)
        #expect(d.tests[1].notifier!.testAndClear() == 1)
        b.memorySpace.write(Self.mmio, value: 0, size: 1)
        #expect(rec.dels.count == 1 && rec.adds.count == 1)
        #expect(d.tests[4].eventfdSize == 1)            // port I/O never uses size 0
    }
}
