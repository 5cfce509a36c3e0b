import Memory
import TestSupport
import Testing
@testable import Devices

/// Configuration mechanism #1 decoded as QEMU's host bridge decodes it: the register is
/// CONFIG_ADDRESS bits 7:0, bits 1:0 included, ORed with the offset in the data window; an
/// access is cut at register 0xff; any byte of 0xcf8-0xcfb reads CONFIG_ADDRESS's low bytes.
/// QEMU: pci_host_data_read/write(), pci_data_read/write(), pci_host_config_read_common(),
/// pci_host_config_read() (hw/pci/pci_host.c).
@Suite struct PCIConfigDecodeTests {
    let bus = TestBus()
    let host: PCIHost
    let device = PCIDevice(vendorID: 0x1b36, deviceID: 0x0005, classCode: 0xff_00_00, interruptPin: 1)

    init() throws {
        host = PCIHost(ioSpace: bus.io, memorySpace: bus.memory)
        host.map(into: bus.io)
        try host.register(device, slot: 2)
    }

    /// 00:02.0 with `low` in CONFIG_ADDRESS bits 7:0.
    func select(_ low: UInt64) { bus.outl(0xcf8, 0x8000_1000 | low) }

    @Test func lowBitsOfTheAddressSelectTheRegister() {
        select(0x02)
        #expect(bus.inw(0xcfc) == 0x0005, "0x80001002 then a word at 0xcfc is the device ID")
        select(0x01)
        #expect(bus.inb(0xcfc) == 0x1b)                 // register 1: vendor ID bits 15:8
        #expect(bus.inb(0xcfe) == 0x00)                 // 1 | 2 = register 3
        select(0x02)
        #expect(bus.inw(0xcfe) == 0x0005)               // 2 | 2 = 2: ORed, not added
        select(0x03)
        // Register 3, four bytes: device ID bits 15:8, command, status bits 7:0.
        #expect(bus.inl(0xcfc) == device.configRead(offset: 3, size: 4))
    }

    @Test func accessesStopAtTheEndOfConfigurationSpace() {
        device.configWrite(offset: 0x3c, value: 0xaa, size: 1)
        select(0xfd)
        // Three bytes (0xfd-0xff) are read; the fourth is not configuration space and reads 0.
        #expect(bus.inl(0xcfc) == 0)
        select(0xfc | 3)
        #expect(bus.inw(0xcfc) == 0, "register 0xff, one byte")
    }

    @Test func writesTakeTheSameDecode() {
        select(0x3c | 1)
        bus.outb(0xcfc, 0x5a)                           // register 0x3d: the pin, read-only
        #expect(device.configRead(offset: 0x3d, size: 1) == 1)
        select(0x3c)
        bus.outb(0xcfc, 0x5a)
        #expect(device.configRead(offset: 0x3c, size: 1) == 0x5a)
        select(0x3c | 2)
        bus.outw(0xcfc, 0x1234)                         // registers 0x3e-0x3f: read-only
        #expect(device.configRead(offset: 0x3c, size: 4) == 0x0000_015a)
    }

    @Test func everyByteOfTheAddressPortReadsItsLowBytes() {
        bus.outl(0xcf8, 0x8765_4302)
        #expect(bus.inl(0xcf8) == 0x8765_4302)
        #expect(bus.inb(0xcf8) == 0x02 && bus.inb(0xcf9) == 0x02 && bus.inb(0xcfa) == 0x02 && bus.inb(0xcfb) == 0x02)
        #expect(bus.inw(0xcfa) == 0x4302)
        bus.outw(0xcf8, 0)                              // not a dword at 0xcf8: ignored
        bus.outb(0xcfb, 0)
        #expect(host.currentConfigAddress == 0x8765_4302)
    }

    @Test func disabledOrAbsentStillReadsOnes() {
        bus.outl(0xcf8, 0x0000_1002)
        #expect(bus.inw(0xcfc) == 0xffff)
        bus.outl(0xcf8, 0x8000_1802)                    // 00:03.0: nothing there
        #expect(bus.inw(0xcfc) == 0xffff)
    }
}
