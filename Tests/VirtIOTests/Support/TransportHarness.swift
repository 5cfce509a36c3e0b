import Devices
import Foundation
import Memory
import Synchronization
import Testing
import TestSupport
import VMMSys
@testable import VirtIO

/// A virtio-pci device on a PCI host in a RAM address space with no accelerator (the memory
/// core itself signals the notify ioeventfd), driven the way a guest driver drives it.
final class TransportHarness {
    let system = MemorySystem()
    let memory: AddressSpace
    let guest: GuestMemory
    let host: PCIHost
    let thread: IOThread
    let msi = RecordingMSI()
    let dev: VirtIOPCI
    let intx = IRQRecorder()
    let bar1: UInt64, bar4: UInt64
    var common: UInt64 { bar4 + VirtIOPCI.commonOffset }

    init(_ device: any VirtIODevice, ramSize: UInt64 = 0x100000, options: VirtIOPCI.Options = .init()) throws {
        let memRoot = MemoryRegion.container(name: "system", size: UInt128(1) << 64)
        let ioRoot = MemoryRegion.container(name: "io", size: 0x10000)
        memRoot.addSubregion(try MemoryRegion.ram(name: "ram", size: ramSize), at: 0)
        memory = AddressSpace(root: memRoot, name: "memory", system: system)
        guest = memory.guestMemory
        host = PCIHost(ioSpace: ioRoot, memorySpace: memRoot)
        host.map(into: ioRoot)
        thread = try IOThread()
        thread.start()
        dev = try VirtIOPCI(device: device, dma: memory.dmaMemory, msiController: msi, intx: intx.irq, ioThread: thread, fastMMIO: true, options: options)
        try host.register(dev, slot: 3)
        host.assignBARs(mmioTop: 0xfec0_0000)
        bar4 = try #require(dev.barAddress(4))
        bar1 = try #require(dev.barAddress(1))
    }

    deinit { thread.stop() }

    func write(_ offset: UInt64, _ value: UInt64, _ size: Int) { memory.write(common + offset, value: value, size: size) }
    func read(_ offset: UInt64, _ size: Int) -> UInt64 { memory.read(common + offset, size: size).value }
    var status: UInt8 { UInt8(read(0x14, 1)) }

    /// Driver initialization up to FEATURES_OK, accepting every offered feature but EVENT_IDX.
    func negotiate() {
        write(0x14, 0, 1)
        write(0x14, 1 | 2, 1)
        for select: UInt64 in 0...1 {
            write(0x00, select, 4)
            let offered = read(0x04, 4)
            write(0x08, select, 4)
            write(0x0c, select == 0 ? offered & ~(1 << 29) : offered, 4)
        }
        write(0x14, 1 | 2 | 8, 1)
    }

    /// Programs queue `q` with the given ring addresses and enables it.
    func setQueue(_ q: UInt16, size: UInt16, desc: UInt64, avail: UInt64, used: UInt64, vector: UInt16 = 1) {
        write(0x16, UInt64(q), 2)
        write(0x18, UInt64(size), 2)
        write(0x1a, UInt64(vector), 2)
        for (off, v) in [(0x20, desc), (0x28, avail), (0x30, used)] {
            write(UInt64(off), v & 0xffff_ffff, 4)
            write(UInt64(off) + 4, v >> 32, 4)
        }
        write(0x1c, 1, 2)
    }

    /// MSI-X on with entries 0 (config, data 0x40) and 1 (queue, data 0x41), unmasked.
    func enableMSIX() {
        for (i, data) in [(UInt64(0), UInt64(0x40)), (1, 0x41)] {
            memory.write(bar1 + 16 * i, value: 0xfee0_0000, size: 4)
            memory.write(bar1 + 16 * i + 8, value: data, size: 4)
            memory.write(bar1 + 16 * i + 12, value: 0, size: 4)
        }
        var cap = Int(dev.configRead(offset: 0x34, size: 1))
        while dev.configRead(offset: cap, size: 1) != 0x11 { cap = Int(dev.configRead(offset: cap + 1, size: 1)) }
        dev.configWrite(offset: cap + 2, value: 0x8000, size: 2)
        write(0x10, 0, 2)                                                    // config vector 0
    }

    func driverOK() { write(0x14, UInt64(status | 4), 1) }
    func kick(_ q: UInt16) { memory.write(bar4 + VirtIOPCI.notifyOffset + 4 * UInt64(q), value: UInt64(q), size: 2) }

    /// The notifier MSI-X message `data` was connected to, if any.
    func vectorNotifier(data: UInt32) -> EventNotifier? {
        msi.connected.withLock { $0.last { $0.data == data }?.notifier }
    }

    /// Polls `condition` until it holds or a generous deadline passes (`pollUntil`).
    @discardableResult
    func waitUntil(_ seconds: Int = 10, _ condition: () throws -> Bool) rethrows -> Bool {
        try pollUntil(timeout: .seconds(seconds), condition)
    }
}
