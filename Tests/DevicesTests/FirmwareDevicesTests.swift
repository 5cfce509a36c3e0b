import Memory
import TestSupport
import Testing
@testable import Devices

/// The small devices firmware talks to: isa-debugcon, the PIIX4 PM block at PMBA, the PIIX3's
/// PIRQ routes and IDE ports with no drives.
@Suite struct FirmwareDevicesTests {
    let bus = TestBus()

    /// Every byte written goes out once, a wider write only its low byte; reads give the
    /// readback value. QEMU: debugcon_ioport_write/read().
    @Test func debugconWritesBytesAndReadsBack() {
        let out = CapturingSerialBackend()
        let con = ISADebugCon(iobase: 0x402, readback: 0x99, backend: out)
        con.map(into: bus.io)
        for b in Array("SeaBIOS\n".utf8) { bus.outb(0x402, UInt64(b)) }
        bus.outw(0x402, 0x4241)
        bus.outl(0x402, 0x4443_4241)
        #expect(out.text == "SeaBIOS\nAA")
        #expect(bus.inb(0x402) == 0x99)
    }

    /// The PM block appears at PMBA & 0xffc0 only while PMREGMISC bit 0 is set, and follows
    /// PMBA when firmware moves it. QEMU: pm_io_space_update().
    @Test func pmBlockFollowsPMBA() {
        let evt = MemoryRegion.io(name: "acpi-evt", size: 4, ops: MemoryRegionOps(read: { _, _ in 0x1234 }, write: { _, _, _ in }))
        let pm = PIIX4PowerManagement(blocks: [(evt, 0)], io: bus.io)
        #expect(pm.windowBase == nil && pm.configRead(offset: 0x40, size: 4) == 1 && pm.configRead(offset: 0x5b, size: 1) == 0x02)
        #expect(bus.inw(0x600) != 0x1234)
        pm.configWrite(offset: 0x40, value: 0x601, size: 4)
        #expect(pm.windowBase == nil, "PMREGMISC still off")
        pm.configWrite(offset: 0x80, value: 1, size: 1)
        #expect(pm.windowBase == 0x600 && bus.inw(0x600) == 0x1234)
        pm.configWrite(offset: 0x40, value: 0xb03f, size: 2)           // low bits ignored
        #expect(pm.windowBase == 0xb000 && bus.inw(0xb000) == 0x1234 && bus.inw(0x600) != 0x1234)
        pm.configWrite(offset: 0x80, value: 0, size: 1)
        #expect(pm.windowBase == nil && bus.inw(0xb000) != 0x1234)
        pm.configWrite(offset: 0x80, value: 1, size: 1)
        pm.reset()
        #expect(pm.windowBase == nil && pm.configRead(offset: 0x40, size: 4) == 1)
    }

    @Test func pirqRoutesAsPIIX3() {
        #expect(PIIX3.routedIRQ(0x0a) == 10 && PIIX3.routedIRQ(0x8a) == nil)
        for irq: UInt8 in [0, 1, 2, 8, 13] { #expect(PIIX3.routedIRQ(irq) == nil) }
        let bridge = PIIX3.isaBridge()
        PIIX3.resetRouting(bridge)
        #expect(bridge.configRead(offset: 0x60, size: 4) == 0x8080_8080 && bridge.configRead(offset: 0x04, size: 2) == 0x07)
        bridge.configWrite(offset: 0x60, value: 0x0b0b_0a0a, size: 4)
        #expect(bridge.configRead(offset: 0x60, size: 4) == 0x0b0b_0a0a)
    }

    @Test func ideWithoutDrivesReadsZero() {
        for (region, port) in PIIX3.ideLegacyPorts() { bus.io.addSubregion(region, at: port) }
        for port: UInt64 in [0x1f0, 0x1f7, 0x3f6, 0x170, 0x177, 0x376] { #expect(bus.inb(port) == 0, "port \(port)") }
        #expect(bus.inw(0x1f0) == 0 && bus.inl(0x1f0) == 0)
        bus.outb(0x1f6, 0xa0)
        #expect(bus.inb(0x1f7) == 0)
    }
}
