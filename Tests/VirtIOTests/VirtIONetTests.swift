import Foundation
import Memory
import Testing
import TestSupport
import VMMSys
@testable import VirtIO

/// virtio-net over a frame backend that keeps frame boundaries (as a tap does), driven through
/// the PCI transport as a driver drives it. QEMU's behaviour is named in each test.
@Suite struct VirtIONetTests {
    let me = MACAddress.qemuDefault(index: 0).array

    @Test func framesFlowBothWaysWithTheHeader() throws {
        let backend = try DatagramBackend()
        let h = try NetHarness(backend: backend)
        h.start(accept: ~VirtIONetFeature.mrgRxBuf)
        // Receive: the 12-byte header, then the frame; num_buffers 1 without MRG_RXBUF.
        let rxBuf = NetHarness.bufferBase
        try h.t.guest.write([UInt8](repeating: 0xaa, count: 2048), at: rxBuf)
        h.submit(0, [(rxBuf, 2048, true)])
        let frame = Frames.ethernet(to: me, payload: Frames.pattern(100))
        var header = [UInt8](repeating: 0, count: 12)
        header[0] = 0                                     // flags
        backend.send(header + frame)
        let used = try #require(h.nextUsed(0))
        #expect(used.id == 0 && used.length == UInt32(12 + frame.count))
        let got = try h.t.guest.read(at: rxBuf, count: 12 + frame.count)
        #expect(Array(got[0..<10]) == [UInt8](repeating: 0, count: 10))
        #expect(got[10] == 1 && got[11] == 0, "num_buffers")
        #expect(Array(got[12...]) == frame)
        #expect(h.net.counters.received == 1)

        // Transmit: header and frame in two buffers reach the backend as one frame.
        let txBuf = NetHarness.bufferBase + 0x10000
        let out = Frames.ethernet(to: [2, 0, 0, 0, 0, 9], from: me, payload: Frames.pattern(300, seed: 3))
        try h.t.guest.write(header, at: txBuf)
        try h.t.guest.write(out, at: txBuf + 0x100)
        h.submit(1, [(txBuf, 12, false), (txBuf + 0x100, UInt32(out.count), false)])
        #expect(backend.receive() == header + out)
        let done = try #require(h.nextUsed(1))
        #expect(done.length == 0)
        #expect(h.net.counters.transmitted == 1)
    }

    /// MRG_RXBUF: a frame larger than one buffer spreads over several chains; num_buffers says
    /// how many; the first length includes the header. QEMU: virtio_net_receive_rcu().
    @Test func mergeableBuffersCarryALargeFrame() throws {
        let backend = try DatagramBackend()
        let h = try NetHarness(backend: backend)
        h.start()
        for i in 0..<4 { h.submit(0, [(NetHarness.bufferBase + UInt64(i) * 0x1000, 1024, true)]) }
        let frame = Frames.ethernet(to: me, payload: Frames.pattern(2986))      // 3000 bytes
        backend.send(Frames.header + frame)
        let lengths = (0..<3).compactMap { _ in h.nextUsed(0)?.length }
        #expect(lengths == [1024, 1024, 3012 - 2048])
        var all: [UInt8] = []
        for i in 0..<3 { all += try h.t.guest.read(at: NetHarness.bufferBase + UInt64(i) * 0x1000, count: Int(lengths[i])) }
        #expect(all[10] == 3 && all[11] == 0, "num_buffers")
        #expect(Array(all[12...]) == frame)
    }

    /// Without MRG_RXBUF a frame larger than the chain is dropped and the chain goes back to
    /// the ring unused (QEMU: virtqueue_unpop); the next frame that fits uses it.
    @Test func tooSmallChainDropsTheFrameNotTheBuffer() throws {
        let backend = try DatagramBackend()
        let h = try NetHarness(backend: backend)
        h.start(accept: ~VirtIONetFeature.mrgRxBuf)
        h.submit(0, [(NetHarness.bufferBase, 100, true)])
        backend.send(Frames.header + Frames.ethernet(to: me, payload: Frames.pattern(200)))
        #expect(pollUntil { h.net.counters.receiveDropped == 1 })
        #expect(h.usedIndex(0) == 0)
        let small = Frames.ethernet(to: me, payload: Frames.pattern(40))
        backend.send(Frames.header + small)
        let used = try #require(h.nextUsed(0))
        #expect(used.length == UInt32(12 + small.count))
        #expect(h.net.counters.received == 1)
    }

    /// No guest buffers: the frame read is held, the backend stops being polled (no busy
    /// loop), and once the driver adds a buffer and kicks, the same frame arrives — nothing is
    /// dropped. QEMU: virtio_net_has_buffers() → tap_read_poll(false); virtio_net_handle_rx().
    @Test func noBuffersStopsPollingAndKeepsTheFrame() throws {
        let backend = try DatagramBackend()
        let h = try NetHarness(backend: backend)
        h.start()
        let frames = (0..<3).map { Frames.ethernet(to: me, payload: Frames.pattern(60, seed: UInt8($0))) }
        for f in frames { backend.send(Frames.header + f) }
        #expect(pollUntil { h.net.counters.receiveStalls >= 1 && h.net.holdsFrame(pair: 0) })
        #expect(!h.net.isPollingBackend(pair: 0))
        let stalls = h.net.counters.receiveStalls
        for i in 0..<3 { h.submit(0, [(NetHarness.bufferBase + UInt64(i) * 0x1000, 2048, true)]) }
        for (i, f) in frames.enumerated() {
            let used = try #require(h.nextUsed(0))
            #expect(used.id == UInt32(i))
            #expect(try h.t.guest.read(at: NetHarness.bufferBase + UInt64(i) * 0x1000 + 12, count: f.count) == f)
        }
        #expect(h.net.counters.receiveDropped == 0 && h.net.counters.received == 3)
        #expect(h.net.counters.receiveStalls >= stalls)
        #expect(pollUntil { h.net.isPollingBackend(pair: 0) })
    }

    /// The receive filter as the control queue programs it. QEMU: receive_filter(),
    /// virtio_net_handle_rx_mode/mac/vlan_table().
    @Test func controlQueueProgramsTheFilter() throws {
        let backend = try DatagramBackend()
        let h = try NetHarness(backend: backend)
        h.start()
        for i in 0..<12 { h.submit(0, [(NetHarness.bufferBase + UInt64(i) * 0x1000, 2048, true)]) }
        /// Whether the frame reached the guest (rather than being filtered out).
        func offer(_ dst: [UInt8], type: UInt16 = 0x0800, payload: [UInt8] = Frames.pattern(50)) -> Bool {
            let received = h.net.counters.received, dropped = h.net.counters.receiveDropped
            backend.send(Frames.header + Frames.ethernet(to: dst, type: type, payload: payload))
            _ = pollUntil { h.net.counters.received + h.net.counters.receiveDropped > received + dropped }
            return h.net.counters.received > received
        }
        let other: [UInt8] = [2, 1, 2, 3, 4, 5], bcast = [UInt8](repeating: 0xff, count: 6), multi: [UInt8] = [1, 0, 0x5e, 0, 0, 1]
        #expect(offer(other), "promiscuous by default")
        #expect(h.command(0, 0, [0]) == 0)                              // PROMISC off
        #expect(!offer(other))
        #expect(offer(me))
        #expect(offer(bcast))
        #expect(h.command(0, 5, [1]) == 0)                              // NOBCAST on
        #expect(!offer(bcast))
        #expect(!offer(multi))
        // MAC table: one unicast (other), one multicast.
        let table: [UInt8] = [1, 0, 0, 0] + other + [1, 0, 0, 0] + multi
        #expect(h.command(1, 0, table) == 0)
        #expect(offer(other))
        #expect(offer(multi))
        // VLAN 5 only (CTRL_VLAN negotiated: the table starts empty).
        let tagged = [0, 5, 0x08, 0x00] + Frames.pattern(50)
        #expect(!offer(me, type: 0x8100, payload: tagged))
        #expect(h.command(2, 0, [5, 0]) == 0)
        #expect(offer(me, type: 0x8100, payload: tagged))
        // Bad commands are ERR, never a broken device.
        #expect(h.command(0, 9, [1]) == 1)                              // unknown rx command
        #expect(h.command(0, 0, []) == 1)                               // no "on" byte
        #expect(h.command(2, 0, [0x00, 0x10]) == 1)                     // vid 4096
        #expect(h.command(1, 1, [1, 2, 3, 4, 5]) == 1)                  // MAC_ADDR_SET needs 6 bytes
        #expect(h.command(1, 0, [1, 0, 0, 0] + other + [2, 0, 0, 0] + multi) == 1)   // multicast part short
        // 0x2aaaaaab × 6 wraps to 2 in 32 bits (QEMU would accept); refused here.
        #expect(h.command(1, 0, [0xab, 0xaa, 0xaa, 0x2a, 0xff, 0xff, 0, 0, 0, 0]) == 1)
        #expect(h.command(9, 0, []) == 1)                               // unknown class
        #expect(h.command(4, 0, [2, 0]) == 1)                           // MQ not negotiated
        #expect(h.command(3, 0, []) == 1)                               // no announce pending
        #expect(h.deviceStatus & 0x40 == 0)
        #expect(h.command(1, 1, other) == 0)                            // MAC_ADDR_SET
        #expect(h.net.currentMAC.array == other)
    }

    /// Announce: asked only once GUEST_ANNOUNCE and CTRL_VQ are negotiated; a config
    /// interrupt; the status bit; ACK clears it (a second ACK is ERR). QEMU:
    /// virtio_net_announce(), virtio_net_handle_announce().
    @Test func announceIsAcknowledged() throws {
        let h = try NetHarness(backend: try DatagramBackend())
        #expect(!h.net.announce())
        h.start()
        let generation = h.t.read(0x15, 1)
        #expect(h.net.announce())
        #expect(h.net.status == 3)
        #expect(h.t.read(0x15, 1) != generation)
        #expect(h.t.bar4 != 0 && h.net.readConfig(offset: 6, size: 2) == 3)
        #expect(h.command(3, 0, []) == 0)
        #expect(h.net.status == 1)
        #expect(h.command(3, 0, []) == 1)
    }

    /// virtio_net_config: MAC, status, and 0xff beyond the configuration size (8 bytes
    /// without MQ, 10 with). QEMU: virtio_net_get_config(), virtio_config_modern_readb().
    @Test func configurationSpace() throws {
        let h = try NetHarness(mac: MACAddress([0x52, 0x54, 0, 0x12, 0x34, 0x57]))
        #expect(h.net.readConfig(offset: 0, size: 4) == 0x1200_5452)
        #expect(h.net.readConfig(offset: 4, size: 2) == 0x5734)
        #expect(h.net.readConfig(offset: 6, size: 2) == 1)              // LINK_UP
        #expect(h.net.readConfig(offset: 8, size: 2) == 0xffff)
        #expect(h.net.readConfig(offset: 6, size: 4) == 0xffff_ffff)
        let mq = try VirtIONet(mac: .qemuDefault(index: 0), backend: nil, features: VirtIONetFeature.qemuDefaults | VirtIONetFeature.mq)
        #expect(mq.readConfig(offset: 8, size: 2) == 1)
        // No backend: no offloads offered; MAC always.
        #expect(h.net.features & VirtIONetFeature.csum == 0 && h.net.features & VirtIONetFeature.mac != 0)
        let withTap = try VirtIONet(mac: .qemuDefault(index: 0), backend: try DatagramBackend())
        #expect(withTap.features & VirtIONetFeature.csum != 0 && withTap.features & VirtIONetFeature.hostUFO == 0)
        #expect(VirtIOPCIClass.of(withTap) == 0x020000)
    }

    /// A transmit chain with no readable buffer, and one whose header is short, break the
    /// device (QEMU: "virtio-net header not in first element", "virtio-net header incorrect");
    /// so do a receive chain with no writable buffer (without MRG_RXBUF: with it, a chain with
    /// no writable bytes just is not enough buffer space, as in QEMU's virtio_net_has_buffers())
    /// and a control chain without headers.
    @Test func malformedChainsBreakTheDevice() throws {
        for attack in 0..<4 {
            let backend = try DatagramBackend()
            let h = try NetHarness(backend: backend)
            h.start(accept: attack == 2 ? ~VirtIONetFeature.mrgRxBuf : ~0)
            let b = NetHarness.bufferBase
            switch attack {
            case 0: h.submit(1, [(b, 64, true)])
            case 1: h.submit(1, [(b, 8, false)])
            case 2:
                h.submit(0, [(b, 64, false)])
                backend.send(Frames.header + Frames.ethernet(to: me, payload: Frames.pattern(50)))
            default: h.submit(2, [(b, 1, false), (b + 0x100, 1, true)])
            }
            #expect(h.t.waitUntil { h.deviceStatus & 0x40 != 0 }, "attack \(attack)")
        }
    }

    /// Queue counts beyond the maximum: refused at creation, ERR on the control queue.
    /// QEMU: virtio_net_device_realize(), virtio_net_handle_mq().
    @Test func queuePairLimits() throws {
        #expect(throws: VirtIOError.self) { try VirtIONet(mac: .qemuDefault(index: 0), backend: nil, queuePairs: 32) }
        #expect(throws: VirtIOError.self) { try VirtIONet(mac: .qemuDefault(index: 0), backend: nil, queuePairs: 0) }
        let backend = try DatagramBackend(queues: 2)
        let h = try NetHarness(features: VirtIONetFeature.qemuDefaults | VirtIONetFeature.mq, backend: backend, pairs: 2)
        h.start(queues: 5)
        #expect(h.net.role(4) == .control)
        let base = NetHarness.bufferBase + 0x30000
        func mq(_ n: UInt16) -> UInt8? {
            try! h.t.guest.write([4, 0, UInt8(n & 0xff), UInt8(n >> 8)], at: base)
            h.submit(4, [(base, 4, false), (base + 0x1000, 1, true)])
            guard h.nextUsed(4) != nil else { return nil }
            return try? h.t.guest.load(UInt8.self, at: base + 0x1000)
        }
        #expect(mq(3) == 1 && mq(0) == 1 && mq(0x8001) == 1)
        #expect(h.net.currentQueuePairs == 1)
        #expect(mq(2) == 0)
        #expect(h.net.currentQueuePairs == 2)
        #expect(backend.enabled.withLock { $0 } == [0: true, 1: true])
        // Pair 1 carries frames through its own queue descriptor.
        h.submit(2, [(NetHarness.bufferBase, 2048, true)])
        let f = Frames.ethernet(to: me, payload: Frames.pattern(64))
        backend.send(Frames.header + f, queue: 1)
        let used = try #require(h.nextUsed(2))
        #expect(used.length == UInt32(12 + f.count))
    }
}

enum VirtIOPCIClass {
    static func of(_ d: any VirtIODevice) -> UInt32 { d.pciClassCode }
}
