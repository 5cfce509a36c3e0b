import Foundation
import Memory
import Testing
@testable import VirtIO

/// A hostile driver breaks the device, never the VMM: QEMU's virtio_error() — DEVICE_NEEDS_RESET,
/// the config-change interrupt, no processing until reset — and a reset device serves again.
@Suite struct VirtIOErrorStateTests {
    static let desc: UInt64 = 0x10000, avail: UInt64 = 0x11000, used: UInt64 = 0x12000

    /// One writable 32-byte buffer published as chain 0 of an 8-entry queue at the good rings.
    func publishGoodRequest(_ h: TransportHarness, index: UInt16 = 1) throws {
        try h.guest.store(UInt64(0x20000), at: Self.desc)
        try h.guest.store(UInt32(32), at: Self.desc + 8)
        try h.guest.store(UInt16(2), at: Self.desc + 12)
        try h.guest.store(UInt16(0), at: Self.avail + 4 + 2 * UInt64((index &- 1) % 8))
        try h.guest.store(index, at: Self.avail + 2)
    }

    func usedIndex(_ h: TransportHarness) throws -> UInt16 { try h.guest.load(UInt16.self, at: Self.used + 2) }

    /// Resets the device, sets it up again with good rings, and checks a request completes
    /// with its queue interrupt.
    func resetAndServe(_ h: TransportHarness) throws {
        h.write(0x14, 0, 1)
        #expect(h.status == 0)
        try h.guest.write([UInt8](repeating: 0, count: 0x3000), at: Self.desc)
        h.negotiate()
        h.enableMSIX()
        h.setQueue(0, size: 8, desc: Self.desc, avail: Self.avail, used: Self.used)
        h.driverOK()
        #expect(h.status & 0x40 == 0)
        try publishGoodRequest(h)
        h.kick(0)
        #expect(try h.waitUntil { try usedIndex(h) == 1 }, "a reset device serves a good request")
        #expect(try h.guest.load(UInt32.self, at: Self.used + 8) == 32)
        #expect(h.waitUntil { (h.vectorNotifier(data: 0x41)?.testAndClear() ?? 0) == 1 }, "with its MSI-X interrupt")
    }

    /// The rings of the reproducer (avail at 2^64 - 2) and its siblings are refused
    /// when the queue is enabled, as QEMU's virtio_init_region_cache() refuses them.
    @Test(arguments: [
        (0xffff_ffff_ffff_fff0, avail, used), (desc, 0xffff_ffff_ffff_fffe, used), (desc, avail, 0xffff_ffff_ffff_fffc),
        (desc, avail, 0x100000 - 8),          // used ring (and avail_event) runs off the end of RAM
        (0x100000 - 64, avail, used),        // descriptor table half outside RAM
    ] as [(UInt64, UInt64, UInt64)])
    func ringsOutsideRAMAreRefusedAtEnable(rings: (UInt64, UInt64, UInt64)) throws {
        let h = try TransportHarness(VirtIORNG())
        h.negotiate()
        h.enableMSIX()
        h.setQueue(0, size: 8, desc: rings.0, avail: rings.1, used: rings.2)
        #expect(h.status & 0x40 != 0, "DEVICE_NEEDS_RESET at enable")
        h.driverOK()
        #expect(h.status & 0x40 != 0, "NEEDS_RESET stays set while broken")
        h.kick(0)
        h.kick(0)
        // Nothing is served, and the config interrupt was not raised (DRIVER_OK came later).
        try resetAndServe(h)
        #expect(h.vectorNotifier(data: 0x40)?.testAndClear() ?? 0 == 0)
    }

    /// A chain error after DRIVER_OK: NEEDS_RESET, config vector, generation bump, no more
    /// processing (a good request stays pending) until reset.
    @Test func brokenChainRaisesConfigInterruptAndStopsUntilReset() throws {
        let h = try TransportHarness(VirtIORNG())
        h.negotiate()
        h.enableMSIX()
        h.setQueue(0, size: 8, desc: Self.desc, avail: Self.avail, used: Self.used)
        h.driverOK()
        let generation = h.read(0x15, 1)
        // Head 5 of an 8-entry table chains to descriptor 200.
        try h.guest.store(UInt64(0x20000), at: Self.desc + 5 * 16)
        try h.guest.store(UInt32(8), at: Self.desc + 5 * 16 + 8)
        try h.guest.store(UInt16(2 | 1), at: Self.desc + 5 * 16 + 12)
        try h.guest.store(UInt16(200), at: Self.desc + 5 * 16 + 14)
        try h.guest.store(UInt16(5), at: Self.avail + 4)
        try h.guest.store(UInt16(1), at: Self.avail + 2)
        h.kick(0)
        #expect(h.waitUntil { h.status & 0x40 != 0 })
        #expect(h.waitUntil { (h.vectorNotifier(data: 0x40)?.testAndClear() ?? 0) == 1 }, "config-change MSI-X")
        #expect(h.read(0x15, 1) == (generation + 1) & 0xff)
        #expect(try usedIndex(h) == 0)
        // A good request now is not served: the device is broken until reset.
        try publishGoodRequest(h, index: 2)
        try h.guest.store(UInt16(0), at: Self.avail + 4 + 2)
        h.kick(0)
        h.kick(0)
        #expect(try usedIndex(h) == 0)
        #expect(h.vectorNotifier(data: 0x41)?.testAndClear() ?? 0 == 0)
        try resetAndServe(h)
    }

    /// Without MSI-X, a config change sets ISR bit 1 but raises no INTx: QEMU's
    /// virtio_pci_notify() drives INTx from ISR bit 0 only.
    @Test func intxFollowsISRBitZeroAsQEMU() throws {
        let h = try TransportHarness(VirtIORNG())
        h.negotiate()
        h.setQueue(0, size: 8, desc: Self.desc, avail: Self.avail, used: Self.used, vector: 0xffff)
        h.driverOK()
        try h.guest.store(UInt16(9), at: Self.avail + 4)                  // head 9 of 8
        try h.guest.store(UInt16(1), at: Self.avail + 2)
        h.kick(0)
        #expect(h.waitUntil { h.status & 0x40 != 0 })
        #expect(h.intx.raises == 0)
        #expect(h.memory.read(h.bar4 + VirtIOPCI.isrOffset, size: 1).value == 2)
        #expect(h.memory.read(h.bar4 + VirtIOPCI.isrOffset, size: 1).value == 0, "reading the ISR clears it")
    }

    /// virtio-blk: a status buffer whose range wraps past 2^64 is refused at pop; nothing is
    /// written at the wrapped-to low addresses.
    @Test func wrappingStatusDescriptorIsRefused() throws {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("wrap-\(getpid()).img").path
        try Data(count: 4096).write(to: URL(fileURLWithPath: path))
        defer { try? FileManager.default.removeItem(atPath: path) }
        let h = try TransportHarness(try VirtIOBlock(path: path, readOnly: false))
        h.negotiate()
        h.enableMSIX()
        h.setQueue(0, size: 8, desc: Self.desc, avail: Self.avail, used: Self.used)
        h.driverOK()
        try h.guest.write([UInt8](repeating: 0xcc, count: 16), at: 0)
        try h.guest.store(UInt32(4), at: 0x30000)                          // FLUSH
        for (i, (addr, len, flags, next)) in [(UInt64(0x30000), UInt32(16), UInt16(1), UInt16(1)),
                                                (0xffff_ffff_ffff_fff8, 16, 2, 0)].enumerated() {
            let at = Self.desc + 16 * UInt64(i)
            try h.guest.store(addr, at: at)
            try h.guest.store(len, at: at + 8)
            try h.guest.store(flags, at: at + 12)
            try h.guest.store(next, at: at + 14)
        }
        try h.guest.store(UInt16(0), at: Self.avail + 4)
        try h.guest.store(UInt16(1), at: Self.avail + 2)
        h.kick(0)
        #expect(h.waitUntil { h.status & 0x40 != 0 })
        #expect(try h.guest.read(at: 0, count: 16) == [UInt8](repeating: 0xcc, count: 16))
        #expect(try usedIndex(h) == 0)
    }

    /// Reset is serialized with the I/O thread: once the driver's status-0 write returns, the
    /// old rings are never written again, however the reset interleaves with a busy queue.
    @Test func resetNeverRacesTheIOThreadIntoOldRings() throws {
        let h = try TransportHarness(VirtIORNG(), ramSize: 0x400000)
        var snapshots: [(used: UInt64, index: UInt16, firstBuffer: [UInt8])] = []
        for round in 0..<24 {
            let base = 0x40000 + UInt64(round) * 0x20000
            let (desc, avail, used) = (base, base + 0x1000, base + 0x2000)
            h.negotiate()
            h.setQueue(0, size: 8, desc: desc, avail: avail, used: used, vector: 0xffff)
            h.driverOK()
            // Eight chains of one 64 KiB writable buffer each: two budgets' worth.
            for i in 0..<8 as Range<UInt64> {
                try h.guest.store(base + 0x4000 + i * 0x2000, at: desc + 16 * i)
                try h.guest.store(UInt32(0x2000), at: desc + 16 * i + 8)
                try h.guest.store(UInt16(2), at: desc + 16 * i + 12)
                try h.guest.store(UInt16(i), at: avail + 4 + 2 * i)
            }
            try h.guest.write([UInt8](repeating: 0, count: 0x10000), at: base + 0x4000)
            try h.guest.store(UInt16(8), at: avail + 2)
            h.kick(0)
            h.write(0x14, 0, 1)                                               // reset mid-flight
            snapshots.append((used, try h.guest.load(UInt16.self, at: used + 2),
                              try h.guest.read(at: base + 0x4000, count: 0x10000)))
        }
        // A full reset-and-serve cycle gives a stray write every chance to land first.
        try resetAndServe(h)
        for (i, s) in snapshots.enumerated() {
            let base = 0x40000 + UInt64(i) * 0x20000
            #expect(try h.guest.load(UInt16.self, at: s.used + 2) == s.index, "round \(i): used idx after reset")
            #expect(try h.guest.read(at: base + 0x4000, count: 0x10000) == s.firstBuffer, "round \(i): buffers after reset")
        }
    }
}
