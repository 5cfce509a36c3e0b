import Devices
import Memory
import Testing
import TestSupport
@testable import VirtIO

/// VIRTIO_PCI_CAP_PCI_CFG: the configuration-space window into BAR 4, as QEMU 7.2's
/// virtio_write_config() / virtio_read_config() (Guests/tests/pcicfg.c compares it with QEMU
/// in KernelTests).
@Suite struct VirtIOPCIConfigWindowTests {
    /// The capability list QEMU's virtio-pci has: common, ISR, device, notify, PCI_CFG, MSI-X.
    @Test func capabilityListAndWriteMaskAreQEMUs() throws {
        let h = try TransportHarness(VirtIORNG())
        var list: [(id: UInt32, at: Int, type: UInt32)] = []
        var at = Int(h.dev.configRead(offset: 0x34, size: 1))
        while at != 0 && list.count < 16 {
            let id = h.dev.configRead(offset: at, size: 1)
            list.append((id, at, id == 0x09 ? h.dev.configRead(offset: at + 3, size: 1) : 0))
            at = Int(h.dev.configRead(offset: at + 1, size: 1))
        }
        #expect(list.map { "\($0.id)@\(String($0.at, radix: 16))/\($0.type)" } ==
                ["17@98/0", "9@84/5", "9@70/2", "9@60/4", "9@50/3", "9@40/1"])
        let cap = 0x84
        #expect(h.dev.configRead(offset: cap + 2, size: 1) == 20)
        for field in stride(from: 4, to: 20, by: 4) { #expect(h.dev.configRead(offset: cap + field, size: 4) == 0) }
        // Length 3 first, so the data write makes no access; then all ones everywhere.
        h.dev.configWrite(offset: cap + 12, value: 3, size: 4)
        for field in stride(from: 0, to: 20, by: 4) { h.dev.configWrite(offset: cap + field, value: .max, size: 4) }
        #expect((0..<5).map { h.dev.configRead(offset: cap + 4 * $0, size: 4) } ==
                [0x0514_7009, 0x0000_00ff, .max, .max, .max])
    }

    /// Writes and reads through the window reach the same registers as BAR 4, at 1, 2 and 4
    /// bytes, with the offset rounded down to the length.
    @Test func windowReachesTheModernRegisters() throws {
        let h = try TransportHarness(VirtIORNG())
        let w = Window(h.dev)
        w.write(offset: 0x14, length: 1, value: 1 | 2)                          // status
        #expect(h.status == 3)
        #expect(w.read(offset: 0x14, length: 1) & 0xff == 3)
        w.write(offset: 0x00, length: 4, value: 1)                              // device_feature_select
        #expect(h.read(0x00, 4) == 1)
        #expect(w.read(offset: 0x04, length: 4) == UInt32(h.read(0x04, 4)))
        #expect(w.read(offset: 0x07, length: 4) == 1)                           // rounded to 0x04: VERSION_1
        #expect(w.read(offset: 0x13, length: 2) & 0xffff == 1)                  // rounded to 0x12: num_queues
        // Any overlap with pci_cfg_data makes the access: a 1-byte read of its last byte.
        w.preset(0xa5a5_a5a5)
        w.select(offset: 0x14, length: 1)
        #expect(h.dev.configRead(offset: 0x84 + 19, size: 1) == 0xa5)
        #expect(h.dev.configRead(offset: 0x84 + 16, size: 4) == 0xa5a5_a503)
        // A 2-byte write into queue_select, then queue_size read through the window.
        w.write(offset: 0x16, length: 2, value: 0)
        #expect(w.read(offset: 0x18, length: 2) & 0xffff == UInt32(h.read(0x18, 2)))
    }

    /// A doorbell written through the window kicks the queue as a BAR write does. With
    /// ioeventfd=off nothing else kicks (no kick at DRIVER_OK), so only the window can have
    /// served the request.
    @Test func notifyThroughTheWindowServesTheQueue() throws {
        let h = try TransportHarness(VirtIORNG(), options: .init(ioeventfd: false))
        h.negotiate()
        let (desc, avail, used): (UInt64, UInt64, UInt64) = (0x10000, 0x11000, 0x12000)
        h.setQueue(0, size: 8, desc: desc, avail: avail, used: used, vector: 0xffff)
        h.driverOK()
        h.memory.write(desc, value: 0x20000, size: 8)                            // addr
        h.memory.write(desc + 8, value: 64, size: 4)                             // len
        h.memory.write(desc + 12, value: 2, size: 2)                             // WRITE
        h.memory.write(avail + 4, value: 0, size: 2)                             // ring[0] = 0
        h.memory.write(avail + 2, value: 1, size: 2)                             // idx = 1
        Window(h.dev).write(offset: UInt32(VirtIOPCI.notifyOffset), length: 2, value: 0)
        #expect(h.waitUntil { h.memory.read(used + 2, size: 2).value == 1 })
        #expect(h.memory.read(used + 8, size: 4).value == 64)
    }

    /// Guest-chosen lengths other than 1, 2, 4, offsets beyond the structures or near 2^32, and
    /// any BAR number: nothing traps; an access that reaches nothing leaves pci_cfg_data and
    /// the device as they were; cap.bar is not consulted (QEMU 7.2 ignores it too).
    @Test func hostileFieldsAreIgnoredOrHarmless() throws {
        let h = try TransportHarness(VirtIORNG())
        let w = Window(h.dev)
        w.write(offset: 0x14, length: 1, value: 1)
        let nothing: [(bar: UInt8, offset: UInt32, length: UInt32)] = [
            (4, 0x14, 0), (4, 0x14, 3), (4, 0x14, 5), (4, 0x14, 8), (4, 0x14, .max), (4, 0x14, 0x8000_0001),
            (4, 0x4000, 4), (4, 0x4000, 1), (4, 0xffff_fffc, 4), (4, 0xffff_ffff, 4), (4, 0xffff_ffff, 2),
            (4, 0xffff_ffff, 1), (4, 0x7fff_ffff, 4),
        ]
        for c in nothing {
            w.preset(0x5a5a_5a5a)
            w.select(bar: c.bar, offset: c.offset, length: c.length)
            #expect(h.dev.configRead(offset: 0x84 + 16, size: 4) == 0x5a5a_5a5a, "\(c)")
            h.dev.configWrite(offset: 0x84 + 16, value: 0, size: 4)
            #expect(h.status == 1, "\(c)")
        }
        // BAR numbers beyond 5 (and BAR 1, MSI-X's) reach BAR 4's structures, as in QEMU.
        for bar: UInt8 in [0, 1, 5, 6, 9, 0xff] {
            w.preset(0)
            w.select(bar: bar, offset: 0x14, length: 1)
            #expect(h.dev.configRead(offset: 0x84 + 16, size: 4) == 1, "bar \(bar)")
        }
        // The last byte of each structure at each length: rounded down, always inside.
        for end: UInt32 in [0xfff, 0x1fff, 0x2fff, 0x3fff] {
            for length: UInt32 in [1, 2, 4] { w.preset(0); _ = w.read(offset: end, length: length) }
        }
        #expect(h.status == 1)
    }

    /// Random configuration accesses over the capability (seeded; VMM_TEST_SEED replays): no
    /// trap, and the device keeps answering through BAR 4 afterwards.
    @Test func randomAccessesOverTheCapability() throws {
        let h = try TransportHarness(VirtIORNG())
        var rng = SeededGenerator(seed: SeededGenerator.seedFromEnvironment())
        for _ in 0..<20_000 {
            let size = [1, 2, 4].randomElement(using: &rng)!
            let offset = Int.random(in: 0x80...0x9c, using: &rng)
            if Bool.random(using: &rng) {
                h.dev.configWrite(offset: offset, value: UInt32.random(in: 0...UInt32.max, using: &rng), size: size)
            } else {
                _ = h.dev.configRead(offset: offset, size: size)
            }
        }
        h.write(0x14, 0, 1)
        h.write(0x00, 1, 4)
        #expect(h.read(0x04, 4) & 1 == 1, "seed \(rng.seed)")
        #expect(h.dev.configRead(offset: 0x00, size: 4) == 0x1005_1af4, "seed \(rng.seed)")
    }
}

/// A driver's use of the PCI_CFG capability at 0x84.
private struct Window {
    let dev: VirtIOPCI
    let cap = 0x84
    init(_ dev: VirtIOPCI) { self.dev = dev }

    func select(bar: UInt8 = 4, offset: UInt32, length: UInt32) {
        dev.configWrite(offset: cap + 4, value: UInt32(bar), size: 1)
        dev.configWrite(offset: cap + 8, value: offset, size: 4)
        dev.configWrite(offset: cap + 12, value: length, size: 4)
    }
    /// pci_cfg_data = `value` with no access (length 3 while writing it); leaves length 3.
    func preset(_ value: UInt32) {
        dev.configWrite(offset: cap + 12, value: 3, size: 4)
        dev.configWrite(offset: cap + 16, value: value, size: 4)
    }
    func read(offset: UInt32, length: UInt32) -> UInt32 {
        select(offset: offset, length: length)
        return dev.configRead(offset: cap + 16, size: 4)
    }
    func write(offset: UInt32, length: UInt32, value: UInt32) {
        select(offset: offset, length: length)
        dev.configWrite(offset: cap + 16, value: value, size: 4)
    }
}
