import Devices
import Foundation
import Memory
import VirtIO
import VMMSys

/// virtio-net (two queue pairs and the control queue, every QEMU default feature plus MQ)
/// behind virtio-pci, over a socket-pair frame backend, driven by a hostile driver and a
/// hostile network: any MMIO in BAR4 and BAR1 and config writes (as the virtio-pci target),
/// feature negotiation (MRG_RXBUF, offloads, MQ, … as the script chooses), queue setup,
/// chains published in the rings (direct or indirect), guest RAM written, queue service as
/// the I/O thread runs it (receive, transmit, control), frames from the host (vnet header
/// included), the host draining what the guest sent, control commands (rx mode, MAC table,
/// VLAN, announce, MQ pairs, guest offloads), link changes and announce requests.
///
/// Input: `u8` variant (bit 0: the backend has a vnet header and UFO), `u16` length + bytes of
/// the RAM image at 0 (64 KiB of RAM), then ops, each `u8` kind then operands (see `run`).
///
/// Checks (besides `VirtIODriverModel`'s: RAM written only in used rings and device-writable
/// buffers, used indices moving forward by no more than the chains made available):
/// - every frame the host receives is at most `VirtIONet.frameBufferSize` bytes, non-empty,
///   byte for byte the device-readable bytes of some chain published on that pair's transmit
///   queue (less the vnet header when the backend has none), and no more frames arrive than
///   transmit chains were returned;
/// - MSI-X never disconnects a route it did not connect nor holds more routes than vectors;
/// - the backend is asked only for what it can do (see `FuzzNetBackend`).
func fuzzVirtIONet(_ data: [UInt8]) throws(FuzzFailure) {
    let variant = data.first.map { $0 & 1 } ?? 0
    let fixture = variant == 1 ? VirtIONetFixture.withHeader : VirtIONetFixture.withoutHeader
    try fixture.with { f throws(FuzzFailure) in try f.run(data) }
}

final class VirtIONetFixture {
    static let withHeader = Fixture { VirtIONetFixture(vnetHeader: true) }
    static let withoutHeader = Fixture { VirtIONetFixture(vnetHeader: false) }
    static let name = FuzzTarget.virtioNet.rawValue
    static let maxOps = 256
    static let pairs = 2
    /// Candidate frames kept per run, in bytes; past this the content check stops for the run.
    static let candidateBudget = 8 << 20

    let backend: FuzzNetBackend
    let net: VirtIONet
    let bench: VirtIOPCIBench
    let model: VirtIODriverModel
    private var buffer = [UInt8](repeating: 0, count: FuzzNetBackend.receiveBufferSize)

    /// Per run: frames a transmit chain could make, per pair (nil: too many to keep).
    private var candidates: [Set<Data>?] = []
    private var candidateBytes = 0
    private(set) var framesReceived: [Int] = []

    init(vnetHeader: Bool) {
        backend = FuzzNetBackend(queues: Self.pairs, vnetHeader: vnetHeader, ufo: vnetHeader)
        do {
            net = try VirtIONet(mac: .qemuDefault(index: 0), backend: backend,
                                features: VirtIONetFeature.qemuDefaults | VirtIONetFeature.mq, queuePairs: Self.pairs)
        } catch {
            fatalError("fuzz fixture: \(error)")
        }
        bench = VirtIOPCIBench(net)
        model = VirtIODriverModel(name: Self.name, bench: bench)
    }

    func reset(image: [UInt8]) {
        bench.reset()
        net.setLink(up: true)
        backend.drain(into: &buffer)
        _ = backend.takeProblems()
        model.reset(image: image)
        candidates = Array(repeating: Set<Data>(), count: Self.pairs)
        candidateBytes = 0
        framesReceived = Array(repeating: 0, count: Self.pairs)
    }

    func run(_ data: [UInt8]) throws(FuzzFailure) {
        var input = FuzzInput(data)
        _ = input.u8()
        reset(image: input.bytes(Int(input.u16())))
        let memory = bench.memory, device = bench.device
        for _ in 0..<Self.maxOps where !input.isEmpty {
            switch input.u8() % 18 {
            case 0:     // common configuration write
                let offset = UInt64(input.u8() % 0x40), value = input.u64(), size = accessSize(input.u8())
                try model.deviceStep { model.busWrite(bench.bar4 &+ offset, value, size) }
                model.touchedTransport(writes: 0)
            case 1:     // any BAR4 read
                let offset = UInt64(input.u16() % 0x4000), size = accessSize(input.u8())
                try model.deviceStep { _ = memory.read(bench.bar4 + offset, size: size) }
            case 2:     // any BAR4 write (device configuration, notify, ...)
                let offset = UInt64(input.u16() % 0x4000), value = input.u64(), size = accessSize(input.u8())
                try model.deviceStep { model.busWrite(bench.bar4 &+ offset, value, size) }
                model.touchedTransport(writes: 0)
            case 3:     // MSI-X table / PBA write
                let offset = UInt64(input.u16() % 0x1000), value = input.u64(), size = accessSize(input.u8())
                try model.deviceStep { model.busWrite(bench.bar1 &+ offset, value, size) }
            case 4:     // config space write
                let offset = Int(input.u8()), value = input.u32(), size = accessSize(input.u8()) & 7
                try model.deviceStep { device.configWrite(offset: offset, value: value, size: size) }
                model.touchedTransport()
            case 5:     // feature negotiation
                let features = input.u64()
                try model.deviceStep { model.negotiate(features) }
            case 6:     // queue setup
                let q = UInt16(input.below(device.queues.count)), size = UInt16(1) << UInt16(input.u8() % 9)
                let desc = UInt64(input.u16()), avail = UInt64(input.u16()), used = UInt64(input.u16())
                let vector = UInt16(input.u8()), zero = input.bool()
                try model.deviceStep { () throws(FuzzFailure) in
                    try model.setUpQueue(q, size: size, desc: desc, avail: avail, used: used, vector: vector, zero: zero)
                }
            case 7:     // MSI-X on, DRIVER_OK
                let vectors = input.below(8)
                try model.deviceStep {
                    model.enableMSIX(vectors: vectors)
                    model.driverOK()
                }
            case 8:     // publish a chain
                let q = input.below(device.queues.count), n = 1 + input.below(4)
                var buffers: [(address: UInt64, length: UInt32, writable: Bool)] = []
                for _ in 0..<n { buffers.append((UInt64(input.u16()), UInt32(input.u16()), input.bool())) }
                let table = input.bool() ? UInt64(input.u16()) : nil
                try model.publish(q, buffers, indirect: table)
            case 9:     // the driver writes guest RAM
                let address = UInt64(input.u16()), bytes = input.shortBytes()
                try model.write(bytes, at: address)
            case 10:    // the I/O thread serves a queue
                let q = input.below(device.queues.count)
                try serve(q)
            case 11:    // the host sends a frame towards the guest
                let p = input.below(Self.pairs), frame = input.bytes(Int(input.u16() % 0x2000))
                backend.send(frame, pair: p)
            case 12:    // the host reads what the guest sent
                try drain(pair: input.below(Self.pairs))
            case 13:    // a control command: header, data, ack
                let q = input.bool() ? 2 * Self.pairs : 2
                let cls = input.u8(), cmd = input.u8(), payload = input.shortBytes()
                let at = UInt64(input.u16()), ack = UInt64(input.u16())
                try model.write([cls, cmd] + payload, at: at)
                try model.write([0xee], at: ack)
                try model.publish(q, [(at, UInt32(2 + payload.count), false), (ack, 1, true)])
            case 14:    // the driver transmits a frame (header + Ethernet frame) in one or two buffers
                let p = input.below(Self.pairs), frame = input.bytes(Int(input.u16() % 0x2000))
                let at = UInt64(input.u16()), split = input.below(frame.count + 1)
                try model.write(frame, at: at)
                let buffers: [(address: UInt64, length: UInt32, writable: Bool)] = split == 0 || split == frame.count
                    ? [(at, UInt32(max(frame.count, 1)), false)]
                    : [(at, UInt32(split), false), (at + UInt64(split), UInt32(frame.count - split), false)]
                try model.publish(2 * p + 1, buffers)
            case 15:    // receive buffers: `count` chains of one writable buffer each
                let q = 2 * input.below(Self.pairs), count = 1 + input.below(16)
                let at = UInt64(input.u16()), length = UInt32(input.u16())
                for i in 0..<UInt64(count) { try model.publish(q, [(at &+ i &* UInt64(length), length, true)]) }
            case 16:    // the monitor: link down/up, announce
                let op = input.u8()
                try model.deviceStep {
                    if op & 3 == 3 { net.announce() } else { net.setLink(up: op & 1 != 0) }
                }
            default:    // a kick that reached userspace (the doorbell only: the I/O thread is not running)
                let q = UInt64(input.u8())
                try model.deviceStep { model.busWrite(bench.bar4 &+ VirtIOPCI.notifyOffset + 4 * q, q, 2) }
            }
            try bench.checkMSI(Self.name)
            for p in backend.takeProblems() { throw FuzzFailure(Self.name, "backend: \(p)") }
        }
        try drain(pair: 0)
        try drain(pair: 1)
    }

    /// One I/O-thread turn on queue `q`. Before and after a turn on a transmit queue, the
    /// frames its chains could make are remembered.
    private func serve(_ q: Int) throws(FuzzFailure) {
        let transmit = q % 2 == 1 && q / 2 < Self.pairs
        if transmit { remember(pair: q / 2) }
        try model.deviceStep { _ = bench.device.serve(queue: q) }
        if transmit { remember(pair: q / 2) }
    }

    /// Adds the frame of every chain the transmit queue of pair `p` could pop now (any head in
    /// its avail ring): the device-readable bytes, less the 12-byte header without a vnet
    /// header backend, non-empty and at most the transmit buffer. Where the queue or a chain
    /// lies where the device may write (a used ring, a receive buffer), it can change while
    /// the device works through the queue: then the frames are not known and the content check
    /// stops for the run.
    private func remember(pair p: Int) {
        guard var set = candidates[p], let t = model.queues[2 * p + 1] else { return }
        let skip = backend.vnetHeader ? 0 : 12
        var heads = Set<UInt16>()
        for slot in 0..<UInt64(t.size) {
            guard let h = model.le(t.avail + 4 + 2 * slot, 2) else { break }
            heads.insert(UInt16(truncatingIfNeeded: h))
        }
        for head in heads {
            guard let chain = VirtIODriverModel.chain(model.shadow, t, head: head),
                  let (bytes, overflow) = VirtIODriverModel.readableBytes(model.shadow, chain, limit: VirtIONet.frameBufferSize + skip),
                  !overflow, bytes.count > skip else { continue }
            if model.chainMayChange(t, head: head, chain) {
                candidates[p] = nil
                return
            }
            let frame = Data(bytes[skip...])
            if set.insert(frame).inserted { candidateBytes += frame.count }
        }
        candidates[p] = candidateBytes <= Self.candidateBudget ? set : nil
    }

    /// The host reads every frame the guest sent on pair `p`, each checked.
    private func drain(pair p: Int) throws(FuzzFailure) {
        for frame in backend.receiveAll(pair: p, into: &buffer) {
            framesReceived[p] += 1
            try require(!frame.isEmpty && frame.count <= VirtIONet.frameBufferSize, Self.name,
                        "pair \(p): the host received a \(frame.count)-byte frame (at most \(VirtIONet.frameBufferSize))")
            if let set = candidates[p] {
                try require(set.contains(Data(frame)), Self.name,
                            "pair \(p): the host received a \(frame.count)-byte frame no transmit chain holds")
            }
            let q = 2 * p + 1
            if model.countedEver[q] {
                try require(framesReceived[p] <= model.usedEver[q], Self.name,
                            "pair \(p): \(framesReceived[p]) frames reached the host, \(model.usedEver[q]) transmit chains returned")
            }
        }
    }
}
