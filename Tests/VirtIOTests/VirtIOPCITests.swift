import Devices
import Foundation
import Memory
import Synchronization
import Testing
import VMMSys
@testable import VirtIO

/// Records MSI deliveries: each connected vector gets a notifier the test can read.
final class RecordingMSI: MSIController {
    let connected = Mutex<[(address: UInt64, data: UInt32, notifier: EventNotifier)]>([])
    let sent = Mutex<[(UInt64, UInt32)]>([])
    func connect(address: UInt64, data: UInt32) -> EventNotifier? {
        guard let n = try? EventNotifier() else { return nil }
        connected.withLock { $0.append((address, data, n)) }
        return n
    }
    func disconnect(_ notifier: EventNotifier) { connected.withLock { $0.removeAll { $0.notifier === notifier } } }
    func send(address: UInt64, data: UInt32) { sent.withLock { $0.append((address, data)) } }
}

/// The modern virtio-pci transport driven through real address spaces with no accelerator:
/// the memory core itself signals the notify ioeventfd, so the device behaves as with KVM.
@Suite struct VirtIOPCITests {
    @Test func driverInitKickAndMSIXCompletion() throws {
        let system = MemorySystem()
        let memRoot = MemoryRegion.container(name: "system", size: UInt128(1) << 64)
        let ioRoot = MemoryRegion.container(name: "io", size: 0x10000)
        memRoot.addSubregion(try MemoryRegion.ram(name: "ram", size: 0x100000), at: 0)
        let memory = AddressSpace(root: memRoot, name: "memory", system: system)
        let io = AddressSpace(root: ioRoot, name: "I/O", system: system)
        let host = PCIHost(ioSpace: ioRoot, memorySpace: memRoot)
        host.map(into: ioRoot)
        let thread = try IOThread()
        thread.start()
        defer { thread.stop() }
        let msi = RecordingMSI()
        let dev = try VirtIOPCI(device: VirtIORNG(), dma: memory.dmaMemory, msiController: msi, intx: .disconnected(),
                                ioThread: thread, fastMMIO: true)
        try host.register(dev, slot: 3)
        host.assignBARs(mmioTop: 0xfec0_0000)
        let bar4 = try #require(dev.barAddress(4)), bar1 = try #require(dev.barAddress(1))
        let common = bar4 + VirtIOPCI.commonOffset
        // Capabilities: status bit 4, list from 0x34.
        #expect(dev.configRead(offset: 0x06, size: 2) & 0x10 != 0)
        #expect(dev.configRead(offset: 0x00, size: 4) == 0x1005_1af4)

        // Driver init (virtio 1.x §3.1.1).
        memory.write(common + 0x14, value: 1 | 2, size: 1)                         // ACKNOWLEDGE | DRIVER
        memory.write(common + 0x00, value: 1, size: 4)
        #expect(memory.read(common + 0x04, size: 4).value == 1)                      // VERSION_1 (bit 32)
        memory.write(common + 0x08, value: 1, size: 4)
        memory.write(common + 0x0c, value: 1, size: 4)
        memory.write(common + 0x14, value: 1 | 2 | 8, size: 1)                     // FEATURES_OK
        memory.write(common + 0x16, value: 0, size: 2)
        #expect(memory.read(common + 0x18, size: 2).value == 8)
        memory.write(common + 0x1a, value: 0, size: 2)
        #expect(memory.read(common + 0x1a, size: 2).value == 0)
        memory.write(common + 0x1a, value: 77, size: 2)                              // no such vector
        #expect(memory.read(common + 0x1a, size: 2).value == 0xffff)
        memory.write(common + 0x1a, value: 0, size: 2)
        let (desc, avail, used): (UInt64, UInt64, UInt64) = (0x10000, 0x11000, 0x12000)
        for (off, v) in [(0x20, desc), (0x28, avail), (0x30, used)] {
            memory.write(common + UInt64(off), value: v & 0xffff_ffff, size: 4)
            memory.write(common + UInt64(off) + 4, value: v >> 32, size: 4)
        }
        memory.write(common + 0x1c, value: 1, size: 2)
        // MSI-X: entry 0, then enable in the capability.
        memory.write(bar1, value: 0xfee0_0000, size: 4)
        memory.write(bar1 + 8, value: 0x41, size: 4)
        memory.write(bar1 + 12, value: 0, size: 4)
        var cap = Int(dev.configRead(offset: 0x34, size: 1))
        while dev.configRead(offset: cap, size: 1) != 0x11 { cap = Int(dev.configRead(offset: cap + 1, size: 1)) }
        dev.configWrite(offset: cap + 2, value: 0x8000, size: 2)
        let vector = try #require(msi.connected.withLock { $0.first })
        #expect(vector.address == 0xfee0_0000 && vector.data == 0x41)
        memory.write(common + 0x14, value: 1 | 2 | 8 | 4, size: 1)                 // DRIVER_OK: ioeventfds on
        let notify = try #require(dev.modernRegion.subregions.first { $0.name == "virtio-pci-notify" })
        #expect(notify.ioeventfds.count == 1 && notify.ioeventfds[0].size == 0)

        // One request: a writable 32-byte buffer, then the kick.
        let g = memory.guestMemory
        try g.store(UInt64(0x20000), at: desc)
        try g.store(UInt32(32), at: desc + 8)
        try g.store(UInt16(2), at: desc + 12)
        try g.store(UInt16(0), at: avail + 4)
        try g.store(UInt16(1), at: avail + 2)
        memory.write(bar4 + VirtIOPCI.notifyOffset, value: 0, size: 2)
        // Poll (generous deadline) for the used entry, then for the MSI the I/O thread sends
        // after it: one, through the vector's irqfd notifier.
        func poll(_ condition: () throws -> Bool) rethrows -> Bool {
            let deadline = ContinuousClock.now + .seconds(30)
            while ContinuousClock.now < deadline {
                if try condition() { return true }
                sched_yield()
            }
            return try condition()
        }
        #expect(try poll { try g.load(UInt16.self, at: used + 2) == 1 })
        #expect(try g.load(UInt32.self, at: used + 8) == 32)
        var messages: UInt64 = 0
        #expect(poll { messages += vector.notifier.testAndClear(); return messages > 0 })
        #expect(messages == 1)                                                        // one MSI through its irqfd
        #expect(memory.counters.eventfdSignals == 1)                                  // the kick, signalled by the core

        // Masking holds the message pending; unmasking delivers it.
        memory.write(bar1 + 12, value: 1, size: 4)
        dev.msix?.notify(0)
        #expect(memory.read(bar1 + 0x800, size: 4).value == 1)
        memory.write(bar1 + 12, value: 0, size: 4)
        let again = try #require(msi.connected.withLock { $0.first })
        #expect(again.notifier.testAndClear() == 1)
        #expect(memory.read(bar1 + 0x800, size: 4).value == 0)

        // Reset: status 0 removes the ioeventfds and forgets the queue.
        memory.write(common + 0x14, value: 0, size: 1)
        #expect(notify.ioeventfds.isEmpty)
        #expect(memory.read(common + 0x1c, size: 2).value == 0)
        _ = io
    }
}
