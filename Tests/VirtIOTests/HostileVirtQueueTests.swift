import Memory
import Testing
@testable import VirtIO

/// One test per class of guest-given value a virtqueue uses: each is refused with the error
/// QEMU's virtqueue code reports, never trusted and never trapping.
@Suite struct HostileVirtQueueTests {
    /// Rings near 2^64 or leaving RAM: refused at enable (QEMU: virtio_init_region_cache()).
    @Test func ringsAreCheckedAtEnable() throws {
        let h = try QueueHarness()
        let top = UInt64.max
        for (desc, avail, used, ring) in [(top - 15, h.avail, h.used, "desc"), (h.desc, top - 1, h.used, "avail"),
                                          (h.desc, h.avail, top - 3, "used"), (h.desc, h.avail, 0x10000 - 8, "used")] {
            #expect {
                try h.queue.configure(size: 8, desc: desc, avail: avail, used: used, eventIdx: true, memory: h.memory)
            } throws: { ($0 as? VirtQueueError).map { if case .cannotMap(ring, _, _) = $0 { true } else { false } } ?? false }
            #expect(!h.queue.isReady)
            #expect(try h.queue.pop(h.memory) == nil)
        }
    }

    /// Buffers: zero length, wrapping past 2^64, readable after writable.
    @Test func buffersAreCheckedAtPop() throws {
        let cases: [(UInt64, UInt32, UInt16, VirtQueueError)] = [
            (0x5000, 0, 2, .zeroLengthBuffer(head: 0)),
            (UInt64.max - 7, 16, 2, .bogusBuffer(address: UInt64.max - 7, length: 16)),
        ]
        for (addr, len, flags, error) in cases {
            let h = try QueueHarness()
            try h.setDescriptor(0, addr: addr, len: len, flags: flags)
            try h.publish(0)
            #expect(throws: error) { try h.queue.pop(h.memory) }
        }
        let h = try QueueHarness()
        try h.setDescriptor(0, addr: 0x5000, len: 8, flags: 2 | 1, next: 1)          // writable, then
        try h.setDescriptor(1, addr: 0x6000, len: 8, flags: 0)                       // readable
        try h.publish(0)
        #expect(throws: VirtQueueError.descriptorOrder(head: 0)) { try h.queue.pop(h.memory) }
    }

    /// Indirect tables: only the head's flag counts; a table near 2^64 is refused; a chain of
    /// more than 1024 buffers is refused (QEMU: VIRTQUEUE_MAX_SIZE); a loop inside a table is
    /// bounded by the table's size.
    @Test func indirectTablesAreBounded() throws {
        let h = try QueueHarness()
        try h.setDescriptor(0, addr: UInt64.max - 31, len: 64, flags: 4)
        try h.publish(0)
        #expect(throws: VirtQueueError.badIndirect(head: 0)) { try h.queue.pop(h.memory) }

        // 1025 chained buffers in one indirect table (16400 bytes at 0x8000).
        let h2 = try QueueHarness()
        for i in 0..<1025 as Range<UInt16> {
            try h2.setDescriptor(i, addr: 0x5000, len: 8, flags: 2 | (i < 1024 ? 1 : 0), next: i + 1, table: 0x8000)
        }
        try h2.setDescriptor(0, addr: 0x8000, len: 1025 * 16, flags: 4)
        try h2.publish(0)
        #expect(throws: VirtQueueError.tooManyDescriptors(head: 0)) { try h2.queue.pop(h2.memory) }

        // 1024 are fine.
        let h3 = try QueueHarness()
        for i in 0..<1024 as Range<UInt16> {
            try h3.setDescriptor(i, addr: 0x5000, len: 8, flags: 2 | (i < 1023 ? 1 : 0), next: i + 1, table: 0x8000)
        }
        try h3.setDescriptor(0, addr: 0x8000, len: 1024 * 16, flags: 4)
        try h3.publish(0)
        #expect(try h3.queue.pop(h3.memory)?.buffers.count == 1024)

        // A loop inside a 4-entry table.
        let h4 = try QueueHarness()
        for i in 0..<4 as Range<UInt16> { try h4.setDescriptor(i, addr: 0x5000, len: 8, flags: 1, next: (i + 1) % 4, table: 0x8000) }
        try h4.setDescriptor(0, addr: 0x8000, len: 64, flags: 4)
        try h4.publish(0)
        #expect(throws: VirtQueueError.chainTooLong(head: 0)) { try h4.queue.pop(h4.memory) }

        // An INDIRECT flag inside a table is not followed (QEMU reads the head's flag only).
        let h5 = try QueueHarness()
        try h5.setDescriptor(0, addr: 0x9000, len: 16, flags: 4 | 1, next: 1, table: 0x8000)
        try h5.setDescriptor(1, addr: 0x9100, len: 8, flags: 2, table: 0x8000)
        try h5.setDescriptor(0, addr: 0x8000, len: 32, flags: 4)
        try h5.publish(0)
        #expect(try h5.queue.pop(h5.memory)?.buffers.map(\.address) == [0x9000, 0x9100])
    }

    /// The avail and used indices wrap at 2^16 like the driver's; 70 000 requests go through.
    @Test func indicesWrapAroundSixteenBits() throws {
        let h = try QueueHarness()
        try h.setDescriptor(0, addr: 0x5000, len: 8, flags: 2)
        for i in 0..<70_000 {
            try h.publish(0)
            let chain = try #require(try h.queue.pop(h.memory), "request \(i)")
            _ = try h.queue.push(head: chain.head, length: 8, h.memory)
        }
        #expect(try h.memory.load(UInt16.self, at: h.used + 2) == UInt16(truncatingIfNeeded: 70_000))
        #expect(try h.queue.pop(h.memory) == nil)
    }
}

/// Work per turn is bounded; virtio-rng honours QEMU's rate limit.
@Suite struct VirtQueueBudgetTests {
    /// Eight 64 KiB chains: one turn serves 256 KiB (four chains) and leaves the rest, which
    /// the next turn takes.
    @Test func oneTurnServesOneBudget() throws {
        let h = try QueueHarness(ramSize: 0x100000)
        for i in 0..<8 as Range<UInt16> {
            try h.setDescriptor(i, addr: 0x20000 + UInt64(i) * 0x10000, len: 0x10000, flags: 2)
            try h.publish(i)
        }
        let rng = VirtIORNG()
        var budget = VirtQueueBudget.perWakeUp
        _ = try rng.process(queue: 0, h.queue, memory: h.memory, budget: &budget)
        #expect(budget.isExhausted)
        #expect(try h.memory.load(UInt16.self, at: h.used + 2) == 4)
        #expect(h.queue.hasAvailable(h.memory))
        budget = .perWakeUp
        _ = try rng.process(queue: 0, h.queue, memory: h.memory, budget: &budget)
        #expect(try h.memory.load(UInt16.self, at: h.used + 2) == 8)
        #expect(!h.queue.hasAvailable(h.memory))
    }

    /// A chain far larger than the budget gets one budget of bytes (the used length says so).
    @Test func hugeChainsAreCutToTheBudget() throws {
        let h = try QueueHarness(ramSize: 0x200000)
        for i in 0..<16 as Range<UInt16> {
            try h.setDescriptor(i, addr: 0x100000, len: 0x10000, flags: 2 | (i < 15 ? 1 : 0), next: i + 1, table: 0x8000)
        }
        try h.setDescriptor(0, addr: 0x8000, len: 16 * 16, flags: 4)
        try h.publish(0)
        var budget = VirtQueueBudget.perWakeUp
        _ = try VirtIORNG().process(queue: 0, h.queue, memory: h.memory, budget: &budget)
        #expect(try h.memory.load(UInt32.self, at: h.used + 8) == UInt32(VirtQueueBudget.perWakeUp.bytes))
    }

    /// max-bytes per period, as QEMU's virtio-rng: 100 bytes, then the next chain waits in the
    /// ring until the period ends, and is served then without a kick.
    @Test func rateLimitHoldsRequestsUntilTheNextPeriod() throws {
        let h = try QueueHarness()
        try h.setDescriptor(0, addr: 0x5000, len: 256, flags: 2)
        try h.setDescriptor(1, addr: 0x6000, len: 256, flags: 2)
        try h.publish(0)
        try h.publish(1)
        let rng = VirtIORNG(maxBytes: 100, periodMilliseconds: 20)
        var budget = VirtQueueBudget.perWakeUp
        let first = try rng.process(queue: 0, h.queue, memory: h.memory, budget: &budget)
        #expect(try h.memory.load(UInt16.self, at: h.used + 2) == 1)
        #expect(try h.memory.load(UInt32.self, at: h.used + 8) == 100)
        let resume = try #require(first.resumeAt)
        #expect(h.queue.hasAvailable(h.memory))
        // Before the period ends nothing more is served; once it has, the second chain is.
        while ContinuousClock.now < resume {
            budget = .perWakeUp
            _ = try rng.process(queue: 0, h.queue, memory: h.memory, budget: &budget)
            if ContinuousClock.now < resume { #expect(try h.memory.load(UInt16.self, at: h.used + 2) == 1) }
        }
        budget = .perWakeUp
        _ = try rng.process(queue: 0, h.queue, memory: h.memory, budget: &budget)
        #expect(try h.memory.load(UInt16.self, at: h.used + 2) == 2)
        #expect(try h.memory.load(UInt32.self, at: h.used + 16) == 100)
    }
}
