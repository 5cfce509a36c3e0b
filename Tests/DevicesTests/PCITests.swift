import Memory
import Synchronization
import TestSupport
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

/// A test-only function with one BAR of each shape a device may declare: I/O (32 ports), 32-bit
/// memory (4 KiB), 64-bit prefetchable memory (16 KiB) — virtio-pci's BARs 0, 1 and 4 on QEMU —
/// and optionally a big 64-bit BAR. Each region reads back its own tag, so the tests see which
/// BAR (if any) decodes at an address.
final class BARTestDevice: PCIDevice, @unchecked Sendable {
    static func region(_ name: String, size: UInt128, tag: UInt64) -> MemoryRegion {
        .io(name: name, size: size, ops: MemoryRegionOps(read: { _, _ in tag }, write: { _, _, _ in },
                                                         valid: AccessConstraints(minAccessSize: 1, maxAccessSize: 4),
                                                         implementation: AccessConstraints(minAccessSize: 1, maxAccessSize: 4)))
    }

    init(big: Bool = false) {
        super.init(vendorID: 0x1af4, deviceID: 0x10f0, classCode: 0x00_ff_00)
        registerBAR(0, region: Self.region("bar0-io", size: 32, tag: 0xa0), kind: .io)
        registerBAR(1, region: Self.region("bar1-mem32", size: 0x1000, tag: 0xa1), kind: .memory32)
        if big {
            registerBAR(2, region: Self.region("bar2-mem64", size: UInt128(8) << 30, tag: 0xa2), kind: .memory64)
        }
        registerBAR(4, region: Self.region("bar4-mem64-pref", size: 0x4000, tag: 0xa4), kind: .memory64Prefetchable)
    }
}

/// BAR programming as QEMU's pci_bar_address() judges it, 64-bit BARs, and SeaBIOS's placement.
@Suite struct PCIBARTests {
    let bus = TestBus()
    let host: PCIHost

    init() {
        host = PCIHost(ioSpace: bus.io, memorySpace: bus.memory)
        host.map(into: bus.io)
    }

    func cfgRead(slot: Int, _ reg: Int, size: Int = 4) -> UInt32 {
        bus.outl(0xcf8, configAddress(slot: slot, register: reg))
        return UInt32(truncatingIfNeeded: bus.ioSpace.read(0xcfc + UInt64(reg & 3), size: size).value)
    }

    func cfgWrite(slot: Int, _ reg: Int, _ v: UInt32, size: Int = 4) {
        bus.outl(0xcf8, configAddress(slot: slot, register: reg))
        bus.ioSpace.write(0xcfc + UInt64(reg & 3), value: UInt64(v), size: size)
    }

    /// Which of BARTestDevice's regions answers at `address` (nil: none).
    func tag(memory address: UInt64) -> UInt64? {
        let r = bus.memorySpace.read(address, size: 1)
        return r.result == .ok ? r.value : nil
    }

    @Test func sixtyFourBitBARSizesAndProgramsAsHardware() throws {
        let dev = BARTestDevice(big: true)
        try host.register(dev, slot: 3)
        #expect(dev.bars[4]! == (.memory64Prefetchable, 0x4000) && dev.bars[5] == nil)
        #expect(dev.bars[2]! == (.memory64, 8 << 30) && dev.bars[3] == nil)
        #expect(cfgRead(slot: 3, 0x20) == 0xc)                          // type bits: 64-bit, prefetchable
        #expect(cfgRead(slot: 3, 0x18) == 0x4)                          // 64-bit, not prefetchable
        for reg in stride(from: 0x10, through: 0x24, by: 4) { cfgWrite(slot: 3, reg, 0xffff_ffff) }
        #expect(cfgRead(slot: 3, 0x10) == 0xffff_ffe1)                  // 32 I/O ports
        #expect(cfgRead(slot: 3, 0x14) == 0xffff_f000)
        #expect(cfgRead(slot: 3, 0x18) == 0x0000_0004)                  // 8 GiB: no low address bits
        #expect(cfgRead(slot: 3, 0x1c) == 0xffff_fffe)
        #expect(cfgRead(slot: 3, 0x20) == 0xffff_c00c)                  // as QEMU's virtio-pci BAR 4 sizes
        #expect(cfgRead(slot: 3, 0x24) == 0xffff_ffff)
        // The upper half takes any value; the BAR then decodes above 4 GiB.
        cfgWrite(slot: 3, 0x20, 0xe000_0000)
        cfgWrite(slot: 3, 0x24, 0x0000_0012)
        #expect(cfgRead(slot: 3, 0x24) == 0x12)
        cfgWrite(slot: 3, 0x04, 0x2, size: 2)
        #expect(dev.barAddress(4) == 0x12_e000_0000)
        #expect(tag(memory: 0x12_e000_0000) == 0xa4 && tag(memory: 0x12_e000_3fff) == 0xa4)
        #expect(tag(memory: 0xe000_0000) == nil)
        // Clearing the upper half moves it below 4 GiB in one step.
        cfgWrite(slot: 3, 0x24, 0)
        #expect(dev.barAddress(4) == 0xe000_0000 && tag(memory: 0xe000_0000) == 0xa4 && tag(memory: 0x12_e000_0000) == nil)
        // A 64-bit BAR may end exactly at 4 GiB; a 32-bit one may not (pci_bar_address()).
        cfgWrite(slot: 3, 0x20, 0xffff_c000)
        cfgWrite(slot: 3, 0x14, 0xffff_f000)
        #expect(dev.barAddress(4) == 0xffff_c000 && dev.barAddress(1) == nil)
        // ... and nothing may end at 2^64 - 1.
        cfgWrite(slot: 3, 0x24, 0xffff_ffff)
        #expect(dev.barAddress(4) == nil)
        cfgWrite(slot: 3, 0x24, 0xffff_fffe)
        #expect(dev.barAddress(4) == 0xffff_fffe_ffff_c000 && tag(memory: 0xffff_fffe_ffff_c000) == 0xa4)
    }

    /// QEMU's pci_bar_address(), written out independently: the address a BAR decodes at, or
    /// nil, from the raw register values.
    static func oracle(kind: PCIDevice.BARKind, size: UInt64, low: UInt32, high: UInt32, command: UInt16) -> UInt64? {
        if kind.isIO {
            guard command & 1 != 0 else { return nil }
            let base = UInt64(low) & ~(size - 1) & 0xffff_ffff
            let last = base + size - 1
            if last <= base || last >= 0xffff_ffff || base == 0 { return nil }
            if base <= 0xcff && last >= 0xcf8 { return nil }          // ours: never over the config ports
            return base
        }
        guard command & 2 != 0 else { return nil }
        var raw = UInt64(low)
        if kind.is64Bit { raw |= UInt64(high) << 32 }
        let base = raw & ~(size - 1)
        let last = base &+ (size - 1)
        if last <= base || last == UInt64.max || base == 0 { return nil }
        if !kind.is64Bit && last >= 0xffff_ffff { return nil }
        return base
    }

    /// Any value, at any width, into any BAR register, the ROM BAR and the command register:
    /// nothing traps, and every BAR decodes exactly where pci_bar_address() says.
    @Test func anyValueInAnyBARNeverTrapsAndDecodesWherePciBarAddressSays() throws {
        let dev = BARTestDevice(big: true)
        try host.register(dev, slot: 4)
        var rng = SplitMix(seed: 0x5eed)
        let interesting: [UInt32] = [0, 0xffff_ffff, 0xffff_fffe, 0x8000_0000, 0xffff_f000, 0xffff_c00c, 0x0000_0cf8,
                                     0x0000_0c00, 0x0000_0ce1, 0x0000_ffe0, 0xfebf_8000, 0x1, 0xffff_0000, 0x0001_0000]
        for round in 0..<3000 {
            let reg = [0x04, 0x10, 0x14, 0x18, 0x1c, 0x20, 0x24, 0x30][Int(rng.next() % 8)] + Int(rng.next() % 4)
            let size = [1, 2, 4][Int(rng.next() % 3)]
            let value = round % 3 == 0 ? interesting[Int(rng.next() % UInt64(interesting.count))] : UInt32(truncatingIfNeeded: rng.next())
            cfgWrite(slot: 4, reg, value, size: size)
            let command = UInt16(truncatingIfNeeded: cfgRead(slot: 4, 0x04))
            for (i, b) in dev.bars.enumerated() {
                guard let b else { continue }
                let low = cfgRead(slot: 4, 0x10 + 4 * i), high = b.kind.is64Bit ? cfgRead(slot: 4, 0x14 + 4 * i) : 0
                let want = Self.oracle(kind: b.kind, size: b.size, low: low, high: high, command: command)
                #expect(dev.barAddress(i) == want, "BAR\(i) low \(String(low, radix: 16)) high \(String(high, radix: 16)) cmd \(command)")
            }
            #expect(cfgRead(slot: 4, 0x30) == 0)                       // no ROM: the ROM BAR ignores writes
            #expect(cfgRead(slot: 0, 0x00) == 0x1237_8086)            // configuration space always answers
        }
    }

    /// An I/O BAR moved over 0xcf8-0xcff stays unmapped, so the configuration mechanism keeps
    /// answering and the guest can move the BAR back. (QEMU 7.2 maps it over the ports and
    /// configuration space is lost for good: `Guests/tests/pcibar.c cf8=1`.)
    @Test func ioBARNeverCoversTheConfigurationPorts() throws {
        let dev = BARTestDevice()
        try host.register(dev, slot: 2)
        cfgWrite(slot: 2, 0x04, 0x1, size: 2)
        for base: UInt32 in [0xce0, 0xcf0, 0xcf8, 0xcfc, 0xcff] {
            cfgWrite(slot: 2, 0x10, base)
            #expect(dev.barAddress(0) == nil, "BAR0 at \(String(base, radix: 16))")
            #expect(cfgRead(slot: 0, 0x00) == 0x1237_8086)
            #expect(bus.ioSpace.read(0xcfc, size: 4).value == 0x1237_8086)
        }
        cfgWrite(slot: 2, 0x10, 0xcc0)                                // 0xcc0-0xcdf: below them, fine
        #expect(dev.barAddress(0) == 0xcc0 && bus.inb(0xcdf) == 0xa0)
        cfgWrite(slot: 2, 0x10, 0xd00)
        #expect(dev.barAddress(0) == 0xd00 && bus.inb(0xd1f) == 0xa0)
        #expect(cfgRead(slot: 2, 0x10) == 0xd01)
    }

    /// Placement as QEMU 7.2's SeaBIOS does it, compared with `info pci` there for
    /// `-device pci-testdev -device virtio-rng-pci` (virtio-pci: I/O BAR0 of 32 ports, MSI-X
    /// BAR1 of 4 KiB, 64-bit prefetchable BAR4 of 16 KiB; the PIIX3 IDE's 16-port BAR4):
    /// 00:01.1 BAR4 0xc120, 00:02.0 BAR0 0xfebfe000 BAR1 0xc000, 00:03.0 BAR0 0xc100 BAR1
    /// 0xfebff000 BAR4 0xfebf8000.
    @Test func placementMatchesQEMUsSeaBIOS() throws {
        let ide = PCIDevice(vendorID: 0x8086, deviceID: 0x7010, classCode: 0x01_01_80)
        ide.registerBAR(4, region: BARTestDevice.region("bmdma", size: 16, tag: 0xb4), kind: .io)
        try host.register(ide, slot: 1, function: 1)
        let testdev = try PCITestDev()
        try host.register(testdev, slot: 2)
        let virtio = BARTestDevice()
        try host.register(virtio, slot: 3)
        let out = host.assignBARs(mmioTop: 0xfec0_0000, mmioBottom: 0x8000_0000)
        #expect(ide.barAddress(4) == 0xc120)
        #expect(testdev.barAddress(0) == 0xfebf_e000 && testdev.barAddress(1) == 0xc000)
        #expect(virtio.barAddress(0) == 0xc100 && virtio.barAddress(1) == 0xfebf_f000 && virtio.barAddress(4) == 0xfebf_8000)
        #expect(cfgRead(slot: 3, 0x20) == 0xfebf_800c && cfgRead(slot: 3, 0x24) == 0)
        #expect(out.count == 6 && out.allSatisfy { $0.address != 0 })
        #expect(tag(memory: 0xfebf_8000) == 0xa4 && tag(memory: 0xfebf_f000) == 0xa1 && bus.inb(0xc100) == 0xa0)
    }

    /// When the 32-bit window cannot hold everything, SeaBIOS moves the 64-bit BARs above RAM
    /// (rounded up to 1 GiB) and keeps the rest below 4 GiB.
    @Test func sixtyFourBitBARsMoveAboveFourGiBWhenTheWindowIsFull() throws {
        let a = BARTestDevice(big: true)                              // an 8 GiB BAR cannot fit below 4 GiB
        try host.register(a, slot: 2)
        let out = host.assignBARs(mmioTop: 0xfec0_0000, mmioBottom: 0xc000_0000, above4GEnd: 0x1_3000_0000)
        #expect(a.barAddress(2) == 0x2_0000_0000)                     // 0x1_3000_0000 up to 8 GiB alignment
        #expect(a.barAddress(4) == 0x4_0000_0000)                     // after it, 1 GiB aligned
        #expect(a.barAddress(1) == 0xfebf_f000)                       // 32-bit BARs stay in the window
        #expect(cfgRead(slot: 2, 0x1c) == 0x2 && cfgRead(slot: 2, 0x24) == 0x4)
        #expect(out.count == 4)
        #expect(tag(memory: 0x4_0000_0000) == 0xa4 && tag(memory: 0x2_0000_0000) == 0xa2)
    }

    /// With nowhere to go, BARs stay unassigned rather than overlap (SeaBIOS panics).
    @Test func noRoomLeavesBARsUnassigned() throws {
        let a = BARTestDevice(big: true)
        try host.register(a, slot: 2)
        let out = host.assignBARs(mmioTop: 0xfec0_0000, mmioBottom: 0xfeb0_0000, above4GEnd: UInt64.max - 0x1000)
        #expect(out.allSatisfy { $0.kind.isIO })
        #expect(a.barAddress(1) == nil && a.barAddress(2) == nil && a.barAddress(4) == nil && a.barAddress(0) == 0xc000)
    }

    /// SeaBIOS takes I/O from 0x1000 once the BARs need 16 KiB of ports or more.
    @Test func largeIOGoesFrom0x1000() throws {
        var devices: [PCIDevice] = []
        for slot in 2...3 {
            let d = PCIDevice(vendorID: 1, deviceID: 2, classCode: 0)
            for bar in 0..<(slot == 2 ? 6 : 2) {
                d.registerBAR(bar, region: BARTestDevice.region("io\(slot).\(bar)", size: 0x800, tag: 1), kind: .io)
            }
            try host.register(d, slot: slot)
            devices.append(d)
        }
        host.assignBARs(mmioTop: 0xfec0_0000)                         // 8 x 2 KiB = 16 KiB of ports
        #expect((0..<6).map { devices[0].barAddress($0) } == (0..<6).map { 0x1000 + 0x800 * UInt64($0) })
        #expect(devices[1].barAddress(0) == 0x4000 && devices[1].barAddress(1) == 0x4800)
    }
}

/// A small deterministic generator for the randomized tests.
struct SplitMix {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9e37_79b9_7f4a_7c15
        var z = state
        z = (z ^ (z >> 30)) &* 0xbf58_476d_1ce4_e5b9
        z = (z ^ (z >> 27)) &* 0x94d0_49bb_1331_11eb
        return z ^ (z >> 31)
    }
}

/// The expansion ROM BAR at config 0x30: sizing (all ones reads back ~(size - 1) with the
/// writable enable bit), decoding only with the enable bit and the command register's memory
/// bit both set, the ROM's bytes read-only through memory space, placement by `assignBARs` as
/// SeaBIOS places it (enable bit clear), cleared by a reset. QEMU: pci_register_bar(PCI_ROM_SLOT),
/// pci_bar_address(), pci_do_device_reset().
@Suite struct ROMBARTests {
    let bus = TestBus()
    let host: PCIHost
    let device = PCIDevice(vendorID: 0x1b36, deviceID: 0x0005, classCode: 0x00ff00)
    let rom: MemoryRegion

    init() throws {
        host = PCIHost(ioSpace: bus.io, memorySpace: bus.memory)
        host.map(into: bus.io)
        rom = try MemoryRegion.rom(name: "pci-testdev.rom", size: 0x800)
        _ = rom.ramBlock?.write([0x55, 0xaa, 0x04, 0xeb], offset: 0)
        device.registerROM(rom)
        try host.register(device, slot: 3)
    }

    func cfg(_ reg: Int) -> UInt32 { device.configRead(offset: reg, size: 4) }
    func set(_ reg: Int, _ v: UInt32, size: Int = 4) { device.configWrite(offset: reg, value: v, size: size) }

    @Test func sizingEnableAndDecode() {
        #expect(cfg(0x30) == 0)
        set(0x30, 0xffff_ffff)
        #expect(cfg(0x30) == 0xffff_f801)
        set(0x30, 0xffff_fffe)
        #expect(cfg(0x30) == 0xffff_f800)
        set(0x30, 0xfeb0_0000)                       // an address, enable bit clear
        set(0x04, 0x2, size: 2)                      // memory decoding on
        #expect(device.romAddress == nil && bus.memorySpace.read(0xfeb0_0000, size: 4).value == 0)
        set(0x30, 0xfeb0_0001)
        #expect(device.romAddress == 0xfeb0_0000)
        #expect(bus.memorySpace.read(0xfeb0_0000, size: 4).value == 0xeb04_aa55)
        bus.memorySpace.write(0xfeb0_0000, value: 0, size: 4)           // ROM: the write goes nowhere
        #expect(bus.memorySpace.read(0xfeb0_0000, size: 2).value == 0xaa55)
        set(0x04, 0, size: 2)                        // memory decoding off unmaps it
        #expect(device.romAddress == nil)
        set(0x04, 0x2, size: 2)
        set(0x30, 0xffff_f801)                       // would reach 4 GiB: not decoded
        #expect(device.romAddress == nil)
        set(0x30, 0x0000_0001)                       // address 0: not decoded
        #expect(device.romAddress == nil)
    }

    @Test func placedAsSeaBIOSPlacesItAndResetClears() {
        let assignments = host.assignBARs(mmioTop: 0xfec0_0000)
        let romAssignment = assignments.first { $0.bar == PCIHost.romSlot }
        #expect(romAssignment?.slot == 3 && romAssignment?.size == 0x800 && romAssignment?.address == 0xfebf_f000)
        #expect(cfg(0x30) == 0xfebf_f000 && device.romAddress == nil, "placed with the enable bit clear")
        set(0x30, 0xfebf_f001)
        #expect(device.romAddress == 0xfebf_f000)
        device.resetHeader()
        #expect(cfg(0x30) == 0 && device.romAddress == nil)
    }
}
