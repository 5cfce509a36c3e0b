import Memory
import Testing
@testable import VirtIO

/// A split virtqueue laid out in a RAM-only address space, driven as a guest driver would.
final class QueueHarness {
    let memory: GuestMemory
    let queue: VirtQueue
    let size: UInt16 = 8
    let desc: UInt64 = 0x1000, avail: UInt64 = 0x2000, used: UInt64 = 0x3000
    var availIdx: UInt16 = 0

    init(ramSize: UInt64 = 0x10000) throws {
        let system = MemorySystem()
        let root = MemoryRegion.container(name: "root", size: UInt128(1) << 64)
        root.addSubregion(try MemoryRegion.ram(name: "ram", size: ramSize), at: 0)
        memory = AddressSpace(root: root, name: "memory", system: system).dmaMemory
        queue = VirtQueue(maxSize: 256)
        try queue.configure(size: size, desc: desc, avail: avail, used: used, memory: memory)
    }

    func setDescriptor(_ i: UInt16, addr: UInt64, len: UInt32, flags: UInt16, next: UInt16 = 0, table: UInt64? = nil) throws {
        let at = (table ?? desc) + 16 * UInt64(i)
        try memory.store(addr, at: at)
        try memory.store(len, at: at + 8)
        try memory.store(flags, at: at + 12)
        try memory.store(next, at: at + 14)
    }

    func publish(_ head: UInt16) throws {
        try memory.store(head, at: avail + 4 + 2 * UInt64(availIdx % size))
        availIdx &+= 1
        try memory.store(availIdx, at: avail + 2)
    }
}

@Suite struct VirtQueueTests {
    @Test func chainsArePoppedAndUsedRingWritten() throws {
        let h = try QueueHarness()
        try h.setDescriptor(0, addr: 0x5000, len: 16, flags: 1, next: 3)        // readable, NEXT
        try h.setDescriptor(3, addr: 0x6000, len: 64, flags: 2)                 // writable
        try h.publish(0)
        let chain = try #require(try h.queue.pop(h.memory))
        #expect(chain.head == 0)
        #expect(chain.buffers == [VirtQueueBuffer(address: 0x5000, length: 16, writable: false),
                                  VirtQueueBuffer(address: 0x6000, length: 64, writable: true)])
        #expect(try h.queue.pop(h.memory) == nil)
        #expect(try h.queue.push(head: 0, length: 64, h.memory))
        #expect(try h.memory.load(UInt16.self, at: h.used + 2) == 1)
        #expect(try h.memory.load(UInt32.self, at: h.used + 4) == 0)
        #expect(try h.memory.load(UInt32.self, at: h.used + 8) == 64)
        try h.memory.store(UInt16(1), at: h.avail)                                // NO_INTERRUPT
        try h.publish(3)
        _ = try h.queue.pop(h.memory)
        #expect(try h.queue.push(head: 3, length: 1, h.memory) == false)
    }

    @Test func hostileRingsAreRefusedNotTrusted() throws {
        let h = try QueueHarness()
        try h.setDescriptor(0, addr: 0x5000, len: 8, flags: 1, next: 1)
        try h.setDescriptor(1, addr: 0x5000, len: 8, flags: 1, next: 0)          // a loop
        try h.publish(0)
        #expect(throws: VirtQueueError.chainTooLong(head: 0)) { try h.queue.pop(h.memory) }

        let h2 = try QueueHarness()
        try h2.setDescriptor(0, addr: 0x5000, len: 8, flags: 1, next: 200)       // next out of table
        try h2.publish(0)
        #expect(throws: VirtQueueError.descriptorIndex(200, size: 8)) { try h2.queue.pop(h2.memory) }

        let h3 = try QueueHarness()
        try h3.memory.store(UInt16(9), at: h3.avail + 2)                           // idx jumps past the size
        #expect(throws: VirtQueueError.availIndexJump(lastSeen: 0, published: 9, size: 8)) { try h3.queue.pop(h3.memory) }

        let h4 = try QueueHarness()
        try h4.memory.store(UInt16(0xffff), at: h4.avail + 4)                      // head index out of range
        try h4.memory.store(UInt16(1), at: h4.avail + 2)
        #expect(throws: VirtQueueError.descriptorIndex(0xffff, size: 8)) { try h4.queue.pop(h4.memory) }

        let h5 = try QueueHarness()
        try h5.setDescriptor(0, addr: 0xffff_ffff_0000, len: 16, flags: 4)        // indirect table outside RAM
        try h5.publish(0)
        #expect(throws: VirtQueueError.self) { try h5.queue.pop(h5.memory) }

        let h6 = try QueueHarness()
        try h6.setDescriptor(0, addr: 0x8000, len: 17, flags: 4)                  // indirect length not 16·n
        try h6.publish(0)
        #expect(throws: VirtQueueError.badIndirect(head: 0)) { try h6.queue.pop(h6.memory) }
    }

    @Test func indirectTablesAreFollowedOnce() throws {
        let h = try QueueHarness()
        try h.setDescriptor(0, addr: 0x8000, len: 32, flags: 4)
        try h.setDescriptor(0, addr: 0x9000, len: 4, flags: 1, next: 1, table: 0x8000)
        try h.setDescriptor(1, addr: 0x9100, len: 8, flags: 2, table: 0x8000)
        try h.publish(0)
        let chain = try #require(try h.queue.pop(h.memory))
        #expect(chain.buffers.map(\.address) == [0x9000, 0x9100])
    }

    @Test func rngFillsWritableBuffersOnly() throws {
        let h = try QueueHarness()
        try h.setDescriptor(0, addr: 0x5000, len: 4, flags: 1, next: 1)
        try h.setDescriptor(1, addr: 0x6000, len: 256, flags: 2)
        try h.publish(0)
        let rng = VirtIORNG()
        var budget = VirtQueueBudget.perWakeUp
        #expect(try rng.process(queue: 0, h.queue, memory: h.memory, budget: &budget).interrupt)
        #expect(try h.memory.load(UInt32.self, at: h.used + 8) == 256)
        #expect(try h.memory.read(at: 0x5000, count: 4) == [0, 0, 0, 0])
        #expect(try h.memory.read(at: 0x6000, count: 256).contains { $0 != 0 })
    }

    /// VIRTIO_F_EVENT_IDX: the device publishes avail_event when it looks for work and
    /// interrupts only when the used index passes the driver's used_event.
    @Test func eventIndexSuppression() throws {
        let h = try QueueHarness()
        try h.queue.configure(size: h.size, desc: h.desc, avail: h.avail, used: h.used, eventIdx: true, memory: h.memory)
        try h.setDescriptor(0, addr: 0x5000, len: 8, flags: 2)
        let usedEvent = h.avail + 4 + 2 * UInt64(h.size), availEvent = h.used + 4 + 8 * UInt64(h.size)
        try h.memory.store(UInt16(1), at: usedEvent)          // "interrupt me when used idx passes 1"
        for i in 0..<3 {
            try h.publish(0)
            _ = try #require(try h.queue.pop(h.memory))
            #expect(try h.memory.load(UInt16.self, at: availEvent) == UInt16(i))
            let interrupt = try h.queue.push(head: 0, length: 8, h.memory)
            #expect(interrupt == (i == 1), "push \(i)")      // only the 0 -> 1 -> 2 step crossing 1
        }
    }
}

