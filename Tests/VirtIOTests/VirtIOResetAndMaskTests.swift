import Devices
import Foundation
import Memory
import Testing
import VMMSys
@testable import VirtIO

/// The transport's MSI-X function mask and a reset followed by a full re-initialization,
/// driven as a guest driver would (the same behaviour runs end to end, compared with QEMU, in
/// the virtiorng kernel's "fmask" and "reinit" modes).
@Suite struct VirtIOResetAndMaskTests {
    static let ringsA: (desc: UInt64, avail: UInt64, used: UInt64) = (0x10000, 0x11000, 0x12000)
    static let ringsB: (desc: UInt64, avail: UInt64, used: UInt64) = (0x30000, 0x31000, 0x32000)

    /// Publishes chain `head` (one writable 32-byte buffer at `buffer`) as avail entry `index`.
    func publish(_ h: TransportHarness, rings: (desc: UInt64, avail: UInt64, used: UInt64), head: UInt16,
                 index: UInt16, queueSize: UInt16, buffer: UInt64) throws {
        let d = rings.desc + 16 * UInt64(head)
        try h.guest.store(buffer, at: d)
        try h.guest.store(UInt32(32), at: d + 8)
        try h.guest.store(UInt16(2), at: d + 12)
        try h.guest.store(head, at: rings.avail + 4 + 2 * UInt64(index % queueSize))
        try h.guest.store(index &+ 1, at: rings.avail + 2)
    }

    func usedIndex(_ h: TransportHarness, _ rings: (desc: UInt64, avail: UInt64, used: UInt64)) throws -> UInt16 {
        try h.guest.load(UInt16.self, at: rings.used + 2)
    }

    func msixControlOffset(_ h: TransportHarness) -> Int {
        var cap = Int(h.dev.configRead(offset: 0x34, size: 1))
        while h.dev.configRead(offset: cap, size: 1) != 0x11 { cap = Int(h.dev.configRead(offset: cap + 1, size: 1)) }
        return cap + 2
    }

    /// Messages sent on the vector whose data is `data` since the last call (0 while it has no
    /// connection).
    func messages(_ h: TransportHarness, data: UInt32) -> UInt64 { h.vectorNotifier(data: data)?.testAndClear() ?? 0 }

    /// Function Mask (message control bit 14) masks every vector: a completion sets the pending
    /// bit and sends nothing; clearing the mask sends it once and clears the bit.
    /// QEMU: msix_write_config(), msix_notify(), msix_is_masked().
    @Test func functionMaskHoldsTheCompletionUntilCleared() throws {
        let h = try TransportHarness(VirtIORNG())
        h.negotiate()
        h.enableMSIX()
        h.setQueue(0, size: 8, desc: Self.ringsA.desc, avail: Self.ringsA.avail, used: Self.ringsA.used, vector: 1)
        h.driverOK()
        let control = msixControlOffset(h)
        h.dev.configWrite(offset: control, value: 0xc000, size: 2)
        #expect(h.dev.configRead(offset: control, size: 2) & 0xc000 == 0xc000)
        try publish(h, rings: Self.ringsA, head: 2, index: 0, queueSize: 8, buffer: 0x20000)
        h.kick(0)
        #expect(try h.waitUntil { try usedIndex(h, Self.ringsA) == 1 })
        // The device notifies after it writes the used entry: wait for the pending bit.
        #expect(h.waitUntil { h.memory.read(h.bar1 + 0x800, size: 4).value & 2 != 0 }, "PBA bit 1")
        #expect(messages(h, data: 0x41) == 0, "no message while the function is masked")
        h.dev.configWrite(offset: control, value: 0x8000, size: 2)
        var sent: UInt64 = 0
        #expect(h.waitUntil { sent += messages(h, data: 0x41); return sent > 0 })
        #expect(sent == 1)
        #expect(h.memory.read(h.bar1 + 0x800, size: 4).value & 2 == 0, "pending bit cleared by the delivery")
        #expect(messages(h, data: 0x40) == 0, "nothing on the config vector")
    }

    /// A reset forgets features, queue configuration, vectors, last-avail and the used index;
    /// the driver then initialises everything again (other rings, another size and vector) and
    /// the device serves from avail index 0, never touching the old rings.
    /// QEMU: virtio_pci_reset(), virtio_reset(), virtio_queue_reset().
    @Test func resetThenFullReinitialization() throws {
        let h = try TransportHarness(VirtIORNG(), ramSize: 0x100000)
        h.negotiate()
        h.enableMSIX()
        h.setQueue(0, size: 8, desc: Self.ringsA.desc, avail: Self.ringsA.avail, used: Self.ringsA.used, vector: 1)
        h.driverOK()
        for i: UInt16 in 0..<3 {
            try publish(h, rings: Self.ringsA, head: i, index: i, queueSize: 8, buffer: 0x20000 + 0x100 * UInt64(i))
            h.kick(0)
            #expect(try h.waitUntil { try usedIndex(h, Self.ringsA) == i + 1 })
        }
        h.write(0x00, 0, 4)
        let offered = h.read(0x04, 4)

        h.write(0x14, 0, 1)                                                   // reset
        #expect(h.status == 0)
        h.write(0x08, 0, 4)
        #expect(h.read(0x0c, 4) == 0, "driver features cleared")
        h.write(0x08, 1, 4)
        #expect(h.read(0x0c, 4) == 0)
        h.write(0x00, 0, 4)
        #expect(h.read(0x04, 4) == offered, "device features unchanged")
        #expect(h.read(0x10, 2) == 0xffff, "config vector back to NO_VECTOR")
        h.write(0x16, 0, 2)
        #expect(h.read(0x18, 2) == 8, "queue size back to the maximum")
        #expect(h.read(0x1a, 2) == 0xffff, "queue vector back to NO_VECTOR")
        #expect(h.read(0x1c, 2) == 0, "queue disabled")
        for off: UInt64 in stride(from: 0x20, through: 0x34, by: 4) { #expect(h.read(off, 4) == 0, "ring address \(off)") }
        #expect(h.memory.read(h.bar4 + VirtIOPCI.isrOffset, size: 1).value == 0)
        let oldUsed = try h.guest.read(at: Self.ringsA.used, count: 64)

        // Everything again: a 4-entry queue at other rings, on vector 0 (data 0x40).
        _ = messages(h, data: 0x40)
        _ = messages(h, data: 0x41)
        h.negotiate()
        h.setQueue(0, size: 4, desc: Self.ringsB.desc, avail: Self.ringsB.avail, used: Self.ringsB.used, vector: 0)
        #expect(h.read(0x1a, 2) == 0)
        h.driverOK()
        try publish(h, rings: Self.ringsB, head: 3, index: 0, queueSize: 4, buffer: 0x40000)
        h.kick(0)
        #expect(try h.waitUntil { try usedIndex(h, Self.ringsB) == 1 }, "served from avail index 0")
        #expect(try h.guest.load(UInt32.self, at: Self.ringsB.used + 4) == 3, "used id")
        #expect(try h.guest.load(UInt32.self, at: Self.ringsB.used + 8) == 32, "used length")
        var sent: UInt64 = 0
        #expect(h.waitUntil { sent += messages(h, data: 0x40); return sent > 0 })
        #expect(sent == 1 && messages(h, data: 0x41) == 0, "the new vector, not the old one")
        #expect(try h.guest.read(at: Self.ringsA.used, count: 64) == oldUsed, "old rings untouched")
    }
}
