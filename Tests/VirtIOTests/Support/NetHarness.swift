import Foundation
import Memory
import Synchronization
import SystemPackage
import Testing
import TestSupport
import VMMSys
@testable import VirtIO

/// A tap stand-in: a SOCK_SEQPACKET pair keeps frame boundaries as a tap queue does. The
/// device reads and writes `device`; the test plays the host's network stack on `host`.
final class DatagramBackend: NetBackend {
    let pairs: [SocketPair]
    let vnetHeader: Bool
    let hasUFO = false
    let offloads = Mutex<[UInt32]>([])
    let enabled = Mutex<[Int: Bool]>([:])

    init(queues: Int = 1, vnetHeader: Bool = true) throws {
        pairs = try (0..<queues).map { _ in try SocketPair(.sequencedPackets) }
        self.vnetHeader = vnetHeader
    }

    var queueDescriptors: [FileDescriptor] { pairs.map(\.first) }
    func setOffload(checksum: Bool, tso4: Bool, tso6: Bool, ecn: Bool, ufo: Bool) {
        var f: UInt32 = checksum ? 1 : 0
        if tso4 { f |= 2 }
        if tso6 { f |= 4 }
        offloads.withLock { $0.append(f) }
    }
    func setQueueEnabled(_ index: Int, _ on: Bool) { enabled.withLock { $0[index] = on } }
    var description: String { "datagram backend" }

    /// Sends one frame (with its header when the backend has one) towards the guest.
    func send(_ bytes: [UInt8], queue: Int = 0) {
        _ = bytes.withUnsafeBytes { write(pairs[queue].second.rawValue, $0.baseAddress, $0.count) }
    }

    /// The next frame the guest sent, waiting up to a generous deadline.
    func receive(queue: Int = 0) -> [UInt8]? {
        var buffer = [UInt8](repeating: 0, count: 70_000)
        var got: [UInt8]?
        pollUntil {
            let n = buffer.withUnsafeMutableBytes { read(pairs[queue].second.rawValue, $0.baseAddress, $0.count) }
            if n >= 0 { got = Array(buffer[0..<n]) }
            return got != nil
        }
        return got
    }

    /// Nothing pending from the guest right now.
    func nothingSent(queue: Int = 0) -> Bool {
        var b = [UInt8](repeating: 0, count: 16)
        let n = b.withUnsafeMutableBytes { recv(pairs[queue].second.rawValue, $0.baseAddress, $0.count, Int32(MSG_PEEK | MSG_DONTWAIT)) }
        return n < 0
    }
}

/// A virtio-net device on the PCI transport with rings in RAM, driven as a guest driver
/// drives it: queues 0 (rx), 1 (tx), 2 (control) of 16 entries, MSI-X vector 1 for all.
final class NetHarness {
    let t: TransportHarness
    let net: VirtIONet
    let backend: DatagramBackend?
    static let queueBase: UInt64 = 0x10000, bufferBase: UInt64 = 0x40000
    let size: UInt16 = 16
    var availIdx: [UInt16] = [0, 0, 0, 0, 0, 0, 0]
    var usedSeen: [UInt16] = [0, 0, 0, 0, 0, 0, 0]
    var nextDesc: [UInt16] = [0, 0, 0, 0, 0, 0, 0]

    init(features: UInt64 = VirtIONetFeature.qemuDefaults, backend: DatagramBackend? = nil, pairs: Int = 1,
         mac: MACAddress = .qemuDefault(index: 0)) throws {
        self.backend = backend
        net = try VirtIONet(mac: mac, backend: backend, features: features, queuePairs: pairs)
        t = try TransportHarness(net, ramSize: 0x200000)
    }

    func desc(_ q: Int) -> UInt64 { Self.queueBase + UInt64(q) * 0x1000 }
    func avail(_ q: Int) -> UInt64 { desc(q) + 0x400 }
    func used(_ q: Int) -> UInt64 { desc(q) + 0x800 }

    /// Initialization with `accept` of the offered features (VERSION_1 always), queues
    /// `0..<queues` (rx, tx, ctrl...), MSI-X, DRIVER_OK.
    func start(accept: UInt64 = ~0, eventIdx: Bool = false, queues: Int = 3) {
        t.write(0x14, 0, 1)
        t.write(0x14, 1 | 2, 1)
        for select: UInt64 in 0...1 {
            t.write(0x00, select, 4)
            let offered = t.read(0x04, 4)
            t.write(0x08, select, 4)
            let eventBit: UInt64 = 1 << 29
            let value = select == 0 ? (offered & accept & 0xffff_ffff & ~eventBit) | (eventIdx ? offered & eventBit : 0) : offered & 1
            t.write(0x0c, value, 4)
        }
        t.write(0x14, 1 | 2 | 8, 1)
        t.enableMSIX()
        for q in 0..<queues { t.setQueue(UInt16(q), size: size, desc: desc(q), avail: avail(q), used: used(q)) }
        t.driverOK()
    }

    /// Publishes a chain of (address, length, writable) buffers on queue `q` and kicks.
    @discardableResult
    func submit(_ q: Int, _ buffers: [(UInt64, UInt32, Bool)], kick: Bool = true) -> UInt16 {
        let g = t.guest
        let head = nextDesc[q]
        for (i, b) in buffers.enumerated() {
            let d = (head &+ UInt16(i)) % size
            let at = desc(q) + 16 * UInt64(d)
            try! g.store(b.0, at: at)
            try! g.store(b.1, at: at + 8)
            let last = i == buffers.count - 1
            try! g.store(UInt16((last ? 0 : 1) | (b.2 ? 2 : 0)), at: at + 12)
            try! g.store((d + 1) % size, at: at + 14)
        }
        nextDesc[q] = (head &+ UInt16(buffers.count)) % size
        try! g.store(head, at: avail(q) + 4 + 2 * UInt64(availIdx[q] % size))
        availIdx[q] &+= 1
        try! g.store(availIdx[q], at: avail(q) + 2)
        if kick { t.kick(UInt16(q)) }
        return head
    }

    func usedIndex(_ q: Int) -> UInt16 { (try? t.guest.load(UInt16.self, at: used(q) + 2)) ?? 0 }

    /// The next used entry of queue `q` (waits for it), as (id, length).
    func nextUsed(_ q: Int) -> (id: UInt32, length: UInt32)? {
        let seen = usedSeen[q]
        guard t.waitUntil(10, { self.usedIndex(q) != seen }) else { return nil }
        let slot = UInt64(usedSeen[q] % size)
        usedSeen[q] &+= 1
        let g = t.guest
        return (try! g.load(UInt32.self, at: used(q) + 4 + 8 * slot), try! g.load(UInt32.self, at: used(q) + 8 + 8 * slot))
    }

    /// Sends one control command and returns the ack (0 OK, 1 ERR), or nil on no answer.
    func command(_ cls: UInt8, _ cmd: UInt8, _ data: [UInt8]) -> UInt8? {
        let base = Self.bufferBase + 0x30000
        try! t.guest.write([cls, cmd] + data, at: base)
        try! t.guest.store(UInt8(0xee), at: base + 0x1000)
        submit(2, [(base, UInt32(2 + data.count), false), (base + 0x1000, 1, true)])
        guard nextUsed(2) != nil else { return nil }
        return try? t.guest.load(UInt8.self, at: base + 0x1000)
    }

    var deviceStatus: UInt8 { t.status }
}

/// Frames for the tests: Ethernet headers and payloads.
enum Frames {
    static let header = [UInt8](repeating: 0, count: 12)
    static func ethernet(to dst: [UInt8], from src: [UInt8] = [2, 0, 0, 0, 0, 9], type: UInt16 = 0x0800, payload: [UInt8]) -> [UInt8] {
        dst + src + [UInt8(type >> 8), UInt8(type & 0xff)] + payload
    }
    static func pattern(_ n: Int, seed: UInt8 = 0) -> [UInt8] { (0..<n).map { UInt8(truncatingIfNeeded: $0 &* 7 &+ Int(seed)) } }
}
