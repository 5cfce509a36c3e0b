import Devices
import Memory
import VirtIO
import VMMSys

/// virtio-serial (MULTIPORT, four port slots: a console at 0 and a named port at 1 on chardev
/// stand-ins, a named port at 2 without a chardev, slot 3 empty) behind virtio-pci, driven by
/// a hostile driver and host: any MMIO in BAR4 and BAR1 and config writes, feature
/// negotiation, queue setup, chains published (direct or indirect), guest RAM written, queue
/// service as the I/O thread runs it, control messages (any event id, port id, value and name
/// bytes), port data, receive buffers, host input as the chardev hands it over (after asking
/// how much the port takes), the named port's host side connecting and leaving, emergency
/// writes.
///
/// The chardevs are `Chardev`s over stream socket pairs (`.pipe` transport: the device writes
/// `first`, the script reads what the host got from `second`), attached to an I/O thread that
/// never runs: a throttled named port stays throttled until the guest resets it or the host
/// side leaves.
///
/// Input: `u16` length + bytes of the RAM image at 0 (64 KiB of RAM), then ops, each `u8`
/// kind then operands (see `run`).
///
/// Checks (besides `VirtIODriverModel`'s: RAM written only in used rings and device-writable
/// buffers, used indices moving forward by no more than the chains made available):
/// - the host side of a port receives bytes only while the port is open on the host side and
///   only when the guest's output queue of that port is served (or, on the console, at most a
///   byte per MMIO write: the emergency write), and then only bytes of the chains that queue
///   could pop, in order (a console may drop what its chardev refused: a subsequence);
/// - host input the port said it could take reaches the guest whole when both sides are open
///   (the used lengths of the receive queue add up to it), and nothing reaches it otherwise;
/// - MSI-X routes as in the virtio-pci target.
func fuzzVirtIOSerial(_ data: [UInt8]) throws(FuzzFailure) {
    try VirtIOSerialFixture.shared.with { f throws(FuzzFailure) in try f.run(data) }
}

final class VirtIOSerialFixture {
    static let shared = Fixture { VirtIOSerialFixture() }
    static let name = FuzzTarget.virtioSerial.rawValue
    static let maxOps = 256
    static let maxPorts = 4

    let serial: VirtIOSerial
    /// Port 0 (console), 1 (named, chardev), 2 (named, no chardev).
    let ports: [VirtIOSerialPort]
    /// The host ends of ports 0 and 1.
    let hostSockets: [SocketPair]
    let bench: VirtIOPCIBench
    let model: VirtIODriverModel
    private var buffer = [UInt8](repeating: 0, count: 64 << 10)
    /// What the host side of ports 0 and 1 received in the run.
    private(set) var hostReceived: [[UInt8]] = [[], []]

    init() {
        let sockets = (0..<2).map { _ in
            do { return try SocketPair(.stream) } catch { fatalError("fuzz fixture: \(error)") }
        }
        hostSockets = sockets
        func chardev(_ id: String, _ p: SocketPair) -> Chardev {
            Chardev(id: id, transport: .pipe(input: p.first, output: p.first))
        }
        do {
            serial = try VirtIOSerial(maxPorts: Self.maxPorts)
            ports = [
                try serial.addPort(nr: nil, name: nil, console: true, chardev: chardev("console", sockets[0])),
                try serial.addPort(nr: nil, name: "org.fuzz.port", console: false, chardev: chardev("port", sockets[1])),
                try serial.addPort(nr: nil, name: "org.fuzz.unplugged", console: false, chardev: nil),
            ]
        } catch {
            fatalError("fuzz fixture: \(error)")
        }
        let ports = self.ports
        bench = VirtIOPCIBench(serial) { _, thread in
            for p in ports { try p.chardev?.attach(p, ioThread: thread) }
        }
        model = VirtIODriverModel(name: Self.name, bench: bench)
    }

    /// The queue the guest sends port `p`'s output on, and the one it receives on.
    /// Port 0's queues are 0 and 1, port n's 2(n+1) and 2(n+1)+1; the control queues 2 and 3.
    func inputQueue(_ p: Int) -> Int { ports[p].id == 0 ? 0 : 2 * (Int(ports[p].id) + 1) }
    func outputQueue(_ p: Int) -> Int { inputQueue(p) + 1 }
    static let controlIn = 2, controlOut = 3

    func reset(image: [UInt8]) {
        bench.reset()
        // The named port's host side is connected (a chardev that is there), as after attach.
        if !ports[1].hostConnected { ports[1].chardevEvent(.opened) }
        for s in hostSockets {
            while case .transferred = NonBlockingIO.read(s.second, into: &buffer, count: buffer.count) {}
        }
        model.reset(image: image)
        hostReceived = [[], []]
    }

    func run(_ data: [UInt8]) throws(FuzzFailure) {
        var input = FuzzInput(data)
        reset(image: input.bytes(Int(input.u16())))
        let memory = bench.memory, device = bench.device
        for _ in 0..<Self.maxOps where !input.isEmpty {
            let hostOpen = hostSockets.indices.map { ports[$0].hostConnected }
            var sources: [Int: [[UInt8]]?] = [:]         // port → the chains it may send from in this op
            _ = model.takeMMIOWrites()
            switch input.u8() % 17 {
            case 0:     // common configuration write
                let offset = UInt64(input.u8() % 0x40), value = input.u64(), size = accessSize(input.u8())
                try model.deviceStep { model.busWrite(bench.bar4 &+ offset, value, size) }
                model.touchedTransport(writes: 0)
            case 1:     // any BAR4 read
                let offset = UInt64(input.u16() % 0x4000), size = accessSize(input.u8())
                try model.deviceStep { _ = memory.read(bench.bar4 + offset, size: size) }
            case 2:     // any BAR4 write (device configuration: the emergency write; notify)
                let offset = UInt64(input.u16() % 0x4000), value = input.u64(), size = accessSize(input.u8())
                try model.deviceStep { model.busWrite(bench.bar4 &+ offset, value, size) }
                model.touchedTransport(writes: 0)
            case 3:     // MSI-X table / PBA write
                let offset = UInt64(input.u16() % 0x1000), value = input.u64(), size = accessSize(input.u8())
                try model.deviceStep { model.busWrite(bench.bar1 &+ offset, value, size) }
            case 4:     // config space write (the PCI_CFG window reaches BAR4 too)
                let offset = Int(input.u8()), value = input.u32(), size = accessSize(input.u8()) & 7
                try model.deviceStep { device.configWrite(offset: offset, value: value, size: size) }
                model.touchedTransport()
            case 5:     // feature negotiation
                let features = input.u64()
                try model.deviceStep { model.negotiate(features) }
            case 6:     // queue setup
                let q = UInt16(input.below(device.queues.count)), size = UInt16(1) << UInt16(input.u8() % 8)
                let desc = UInt64(input.u16()), avail = UInt64(input.u16()), used = UInt64(input.u16())
                let vector = UInt16(input.u8()), zero = input.bool()
                try model.deviceStep { () throws(FuzzFailure) in
                    try model.setUpQueue(q, size: size, desc: desc, avail: avail, used: used, vector: vector, zero: zero)
                }
            case 7:     // MSI-X on, DRIVER_OK
                let vectors = input.below(12)
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
                for p in hostSockets.indices where q == outputQueue(p) { sources.updateValue(pending(q), forKey: p) }
                try model.deviceStep { _ = device.serve(queue: q) }
            case 11:    // a control message {le32 id, le16 event, le16 value} + extra bytes (a name)
                let id = input.u8(), event = input.u16(), value = input.u16(), extra = input.shortBytes()
                let at = UInt64(input.u16()), split = input.bool()
                let port: UInt32 = id < 0xf0 ? UInt32(id % 5) : (id == 0xff ? UInt32.max : input.u32())
                var message = (0..<4).map { UInt8(truncatingIfNeeded: port >> (8 * UInt32($0))) }
                message += [UInt8(truncatingIfNeeded: event), UInt8(truncatingIfNeeded: event >> 8),
                            UInt8(truncatingIfNeeded: value), UInt8(truncatingIfNeeded: value >> 8)] + extra
                try model.write(message, at: at)
                try model.publish(Self.controlOut, split
                                  ? [(at, 3, false), (at + 3, UInt32(message.count - 3), false)]
                                  : [(at, UInt32(message.count), false)])
            case 12:    // port data: the guest writes bytes for the host
                let p = input.below(Self.maxPorts), bytes = input.bytes(Int(input.u16() % 0x2000))
                let at = UInt64(input.u16())
                try model.write(bytes, at: at)
                try model.publish(p == 0 ? 1 : 2 * (p + 1) + 1, [(at, UInt32(max(bytes.count, 1)), false)])
            case 13:    // receive buffers on a port's input queue or the control receive queue
                let which = input.below(Self.maxPorts + 1), count = 1 + input.below(8)
                let q = which == Self.maxPorts ? Self.controlIn : (which == 0 ? 0 : 2 * (which + 1))
                let at = UInt64(input.u16()), length = UInt32(input.u16())
                for i in 0..<UInt64(count) { try model.publish(q, [(at &+ i &* UInt64(length), length, true)]) }
            case 14:    // host input, as the chardev hands it over
                let p = input.below(ports.count), bytes = input.bytes(Int(input.u16() % 0x2000))
                try hostInput(port: p, bytes)
            case 15:    // the named port's host side leaves or comes back
                let event: ChardevEvent = input.bool() ? .opened : .closed
                try model.deviceStep { ports[1].chardevEvent(event) }
            default:    // an emergency write (device configuration offset 8)
                let value = UInt64(input.u8())
                try model.deviceStep { model.busWrite(bench.bar4 &+ VirtIOPCI.deviceOffset + 8, value, 4) }
                model.touchedTransport(writes: 0)
            }
            try bench.checkMSI(Self.name)
            try checkHost(wasOpen: hostOpen, sources: sources, mmioWrites: model.takeMMIOWrites())
        }
    }

    /// The device-readable bytes of each chain queue `q` could pop next, in order; nil when
    /// that is not known (the queue is not counted, or a chain reads where the device may
    /// write): then only the port's state is checked.
    private func pending(_ q: Int) -> [[UInt8]]? {
        guard let t = model.queues[q], t.counting else { return nil }
        var out: [[UInt8]] = []
        var position = t.usedTotal
        while position < t.madeAvailable && out.count < Int(t.size) {
            let slot = UInt64(UInt16(truncatingIfNeeded: position) % t.size)
            guard let head = model.le(t.avail + 4 + 2 * slot, 2),
                  let chain = VirtIODriverModel.chain(model.shadow, t, head: UInt16(truncatingIfNeeded: head)) else { break }
            if model.chainMayChange(t, head: UInt16(truncatingIfNeeded: head), chain) { return nil }
            guard let (bytes, _) = VirtIODriverModel.readableBytes(model.shadow, chain, limit: 1 << 20) else { return nil }
            out.append(bytes)
            position += 1
        }
        return out
    }

    /// What the host sides received during the op, against where it may come from.
    private func checkHost(wasOpen: [Bool], sources: [Int: [[UInt8]]?], mmioWrites: Int) throws(FuzzFailure) {
        for p in hostSockets.indices {
            var got: [UInt8] = []
            while case .transferred(let n) = NonBlockingIO.read(hostSockets[p].second, into: &buffer, count: buffer.count) {
                got += buffer[0..<n]
            }
            guard !got.isEmpty else { continue }
            hostReceived[p] += got
            let open = wasOpen[p] || ports[p].hostConnected
            try require(open, Self.name, "port \(p) is closed on the host side, yet the host received \(got.count) bytes")
            if let source = sources[p] {
                guard let chains = source else { continue }      // not modelled: see `pending`
                let all = Array(chains.joined())
                try require(isSubsequence(got, of: all), Self.name,
                            "port \(p): the host received \(got.count) bytes that are not the guest's \(all.count) queued bytes in order")
                // A named port writes whole chains in order (one abandoned when its host side
                // left while throttled may be skipped: QEMU's discard_throttle_data()).
                if !ports[p].isConsole {
                    try require(chains.indices.contains { Array(chains[$0...].joined()).starts(with: got) }, Self.name,
                                "port \(p): the host received bytes other than the guest's output from a chain boundary")
                }
            } else {
                try require(ports[p].isConsole && got.count <= mmioWrites, Self.name,
                            "port \(p): the host received \(got.count) bytes outside any service of its output queue (\(mmioWrites) MMIO writes)")
            }
        }
    }

    /// Host bytes as `Chardev` hands them over: first how much the port takes, then at most
    /// that. With both sides open the used lengths must add up to what was handed over.
    private func hostInput(port p: Int, _ bytes: [UInt8]) throws(FuzzFailure) {
        let port = ports[p], q = inputQueue(p)
        let both = port.hostConnected && port.guestConnected
        let before = model.queues[q]
        let room = try model.deviceStep { port.chardevCanReceive() }
        guard room > 0, !bytes.isEmpty else { return }
        let given = Array(bytes.prefix(room))
        try model.deviceStep { port.chardevReceive(given[...]) }
        guard let t0 = before, let t = model.queues[q], t.counting, bench.status & 0x40 == 0 else { return }
        var delivered: UInt64 = 0
        for position in t0.usedTotal..<t.usedTotal {
            let slot = UInt64(UInt16(truncatingIfNeeded: position) % t.size)
            delivered += model.le(t.used + 8 + 8 * slot, 4) ?? 0
        }
        if both {
            try require(delivered == UInt64(given.count), Self.name,
                        "port \(p): \(given.count) host bytes handed over with both sides open, \(delivered) reached the guest")
        } else {
            try require(t.usedTotal == t0.usedTotal, Self.name,
                        "port \(p): host input reached the guest while the port was not open on both sides")
        }
    }
}

/// Whether `a` is `b` with some bytes left out.
func isSubsequence(_ a: [UInt8], of b: [UInt8]) -> Bool {
    var j = 0
    for x in a {
        while j < b.count && b[j] != x { j += 1 }
        guard j < b.count else { return false }
        j += 1
    }
    return true
}
