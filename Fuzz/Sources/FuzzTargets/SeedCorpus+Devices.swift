import VirtIO

/// Seeds for the virtio-net, virtio-serial and QMP targets: a driver's whole life (features,
/// queues, MSI-X, DRIVER_OK, buffers, traffic both ways, control commands) and a monitor
/// client's session. `SeedMeaningTests` checks what each reaches.
extension SeedCorpus {
    // MARK: virtio-net

    /// Where the net seeds put things: queue q's rings at `netRings(q)` (16 entries), control
    /// commands at 0x3000 (acks from 0x3800), transmit frames at 0x4000 + 0x800·pair, receive
    /// buffers of 0x800 bytes from 0x8000.
    static func netRings(_ q: Int) -> (desc: UInt64, avail: UInt64, used: UInt64) {
        let base = 0x1000 + 0x400 * UInt64(q)
        return (base, base + 0x100, base + 0x200)
    }
    static let netAckBase: UInt64 = 0x3800, netRxBase: UInt64 = 0x8000, netRxLength: UInt16 = 0x800

    /// An Ethernet frame to `dst` (a broadcast by default) with `payload` bytes, behind a
    /// 12-byte virtio-net header (no offload, num_buffers 0).
    static func netFrame(to dst: [UInt8] = [0xff, 0xff, 0xff, 0xff, 0xff, 0xff], payload: Int, seed: UInt8 = 0) -> [UInt8] {
        [UInt8](repeating: 0, count: 12) + dst + [0x02, 0, 0, 0, 0, 0x09, 0x08, 0x00]
            + (0..<payload).map { UInt8(truncatingIfNeeded: $0 &* 7 &+ Int(seed)) }
    }

    final class NetScript {
        let b = FuzzInputBuilder()
        var acks = 0
        init(vnetHeader: Bool) { b.u8(vnetHeader ? 1 : 0).u16(0) }
        func negotiate(_ features: UInt64) { b.u8(5).u64(features | 1 << 32) }
        func queue(_ q: Int, vector: UInt8 = 1) {
            let r = SeedCorpus.netRings(q)
            b.u8(6).u8(UInt8(q)).u8(4).u16(UInt16(r.desc)).u16(UInt16(r.avail)).u16(UInt16(r.used)).u8(vector).bool(true)
        }
        func driverOK(vectors: UInt8 = 4) { b.u8(7).u8(vectors) }
        func rxBuffers(pair: UInt8, count: UInt8, at: UInt64 = SeedCorpus.netRxBase, length: UInt16 = SeedCorpus.netRxLength) {
            b.u8(15).u8(pair).u8(count - 1).u16(UInt16(at)).u16(length)
        }
        func hostSends(pair: UInt8, _ frame: [UInt8]) { b.u8(11).u8(pair).u16(UInt16(frame.count)).raw(frame) }
        func serve(_ q: UInt8) { b.u8(10).u8(q) }
        func transmit(pair: UInt8, _ frame: [UInt8], split: UInt8 = 0) {
            b.u8(14).u8(pair).u16(UInt16(frame.count)).raw(frame).u16(UInt16(0x4000 + 0x800 * Int(pair))).u8(split)
        }
        func drain(pair: UInt8) { b.u8(12).u8(pair) }
        /// A control command on the control queue (at 2, or after two pairs with MQ).
        func command(mq: Bool, _ cls: UInt8, _ cmd: UInt8, _ data: [UInt8]) {
            let at = 0x3000 + 0x80 * UInt16(acks)
            b.u8(13).bool(mq).u8(cls).u8(cmd).shortBytes(data).u16(at).u16(UInt16(SeedCorpus.netAckBase) + UInt16(acks))
            acks += 1
        }
        func monitor(_ op: UInt8) { b.u8(16).u8(op) }
    }

    static let netMAC: [UInt8] = [0x52, 0x54, 0x00, 0x12, 0x34, 0x56], otherMAC: [UInt8] = [0x52, 0x54, 0x00, 0xaa, 0xbb, 0xcc]

    static func virtioNet() -> [(String, [UInt8])] {
        typealias F = VirtIONetFeature
        // Merged receive buffers, offloads, the control queue's commands.
        let a = NetScript(vnetHeader: true)
        a.negotiate(F.mrgRxBuf | F.csum | F.guestCsum | F.hostTSO4 | F.guestTSO4 | F.ctrlVQ | F.ctrlRx | F.ctrlVLAN
                    | F.status | F.mac | F.ctrlGuestOffloads | F.guestAnnounce | F.ctrlMACAddr)
        for q in 0..<3 { a.queue(q) }
        a.driverOK()
        a.rxBuffers(pair: 0, count: 6)
        a.hostSends(pair: 0, netFrame(payload: 50))
        a.serve(0)
        a.hostSends(pair: 0, netFrame(to: netMAC, payload: 3000, seed: 1))          // two merged buffers
        a.serve(0)
        a.transmit(pair: 0, netFrame(to: otherMAC, payload: 60, seed: 2), split: 12)
        a.serve(1)
        a.drain(pair: 0)
        a.command(mq: false, 0, 0, [0])                                                // promiscuous off
        a.command(mq: false, 1, 1, otherMAC)                                           // MAC_ADDR_SET
        a.command(mq: false, 2, 0, [5, 0])                                             // VLAN 5
        a.command(mq: false, 5, 0, le(UInt64(F.guestCsum)))                            // offloads: checksum only
        a.command(mq: false, 1, 0, le(UInt32(1)) + netMAC + le(UInt32(1)) + [0x01, 0, 0x5e, 0, 0, 1])   // MAC table
        a.serve(2)
        a.hostSends(pair: 0, netFrame(to: otherMAC, payload: 40, seed: 3))             // to the new MAC: taken
        a.hostSends(pair: 0, netFrame(to: [2, 9, 9, 9, 9, 9], payload: 40, seed: 4))   // to nobody: filtered
        a.serve(0)
        a.monitor(3)                                                                   // announce
        a.command(mq: false, 3, 0, [])                                                 // ANNOUNCE_ACK
        a.serve(2)
        a.monitor(0); a.monitor(1)                                                     // link down, up

        // Two queue pairs, buffers that do not merge.
        let m = NetScript(vnetHeader: true)
        m.negotiate(F.mq | F.ctrlVQ | F.status | F.mac | F.csum)
        for q in 0..<5 { m.queue(q, vector: UInt8(1 + q % 3)) }
        m.driverOK(vectors: 6)
        m.command(mq: true, 4, 0, le(UInt16(2)))                                       // MQ_VQ_PAIRS_SET 2
        m.serve(4)
        m.rxBuffers(pair: 1, count: 3)
        m.hostSends(pair: 1, netFrame(payload: 100))
        m.serve(2)
        m.transmit(pair: 1, netFrame(to: otherMAC, payload: 80, seed: 5))
        m.serve(3)
        m.drain(pair: 1)
        m.rxBuffers(pair: 0, count: 2)
        m.hostSends(pair: 0, netFrame(payload: 3000))                                  // larger than a chain: dropped
        m.hostSends(pair: 0, netFrame(payload: 64))
        m.serve(0)

        // No vnet header on the backend: the device adds and strips the guest's header.
        let n = NetScript(vnetHeader: false)
        n.negotiate(F.mrgRxBuf | F.status | F.mac | F.ctrlVQ | F.ctrlRx)
        for q in 0..<3 { n.queue(q) }
        n.driverOK()
        n.rxBuffers(pair: 0, count: 4)
        n.hostSends(pair: 0, Array(netFrame(payload: 200).dropFirst(12)))
        n.serve(0)
        n.transmit(pair: 0, netFrame(to: otherMAC, payload: 100, seed: 6))
        n.serve(1)
        n.drain(pair: 0)

        // Transmit back-pressure: 60 KiB frames until the socket is full, then drained.
        let t = NetScript(vnetHeader: true)
        t.negotiate(F.status | F.mac)
        for q in 0..<2 { t.queue(q) }
        t.driverOK()
        for _ in 0..<6 { t.b.u8(8).u8(1).u8(0).u16(0x4000).u16(0xb000).bool(false).bool(false) }
        t.serve(1)
        t.drain(pair: 0)
        t.serve(1)
        t.drain(pair: 0)

        return [("mrg-rxbuf-offloads-control", a.b.bytes), ("two-queue-pairs", m.b.bytes),
                ("no-vnet-header", n.b.bytes), ("transmit-backpressure", t.b.bytes)]
    }

    // MARK: virtio-serial

    /// Where the serial seeds put things: queue q's rings at `serialRings(q)` (8 entries),
    /// control messages from 0x3000, control receive buffers at 0x4000, port receive buffers
    /// at 0x5000 + 0x400·port, port output at 0x7000.
    static func serialRings(_ q: Int) -> (desc: UInt64, avail: UInt64, used: UInt64) {
        let base = 0x1000 + 0x200 * UInt64(q)
        return (base, base + 0x80, base + 0x100)
    }

    final class SerialScript {
        let b = FuzzInputBuilder()
        var messages = 0
        init() { b.u16(0) }
        func negotiate(_ features: UInt64) { b.u8(5).u64(features | 1 << 32) }
        func queue(_ q: Int) {
            let r = SeedCorpus.serialRings(q)
            b.u8(6).u8(UInt8(q)).u8(3).u16(UInt16(r.desc)).u16(UInt16(r.avail)).u16(UInt16(r.used)).u8(UInt8(1 + q % 4)).bool(true)
        }
        func driverOK() { b.u8(7).u8(11) }
        /// Receive buffers: `which` 0...3 a port, 4 the control receive queue.
        func buffers(_ which: UInt8, count: UInt8, at: UInt16, length: UInt16) { b.u8(13).u8(which).u8(count - 1).u16(at).u16(length) }
        func control(port: UInt8, _ event: UInt16, _ value: UInt16, extra: [UInt8] = [], split: Bool = false) {
            b.u8(11).u8(port).u16(event).u16(value).shortBytes(extra).u16(0x3000 + 0x40 * UInt16(messages)).bool(split)
            messages += 1
        }
        func serve(_ q: UInt8) { b.u8(10).u8(q) }
        func output(port: UInt8, _ text: String, at: UInt16) { b.u8(12).u8(port).u16(UInt16(text.utf8.count)).raw(Array(text.utf8)).u16(at) }
        func hostInput(port: UInt8, _ text: String) { b.u8(14).u8(port).u16(UInt16(text.utf8.count)).raw(Array(text.utf8)) }
    }

    static func virtioSerial() -> [(String, [UInt8])] {
        let multiport: UInt64 = 1 << 1, emergency: UInt64 = 1 << 2
        let s = SerialScript()
        s.negotiate(multiport | emergency)
        for q in 0..<8 { s.queue(q) }
        s.driverOK()
        s.buffers(4, count: 8, at: 0x4000, length: 0x40)
        s.control(port: 0, 0, 1)                             // DEVICE_READY: DEVICE_ADD for each port
        s.serve(3)
        s.control(port: 0, 3, 1)                             // PORT_READY 0: CONSOLE_PORT, PORT_OPEN
        s.control(port: 1, 3, 1, split: true)                // PORT_READY 1: PORT_NAME, PORT_OPEN
        s.serve(3)
        s.buffers(4, count: 2, at: 0x4200, length: 0x40)      // 7 of 8 taken: 2 more fit
        s.control(port: 0, 6, 1)                             // the guest opens ports 0 and 1
        s.control(port: 1, 6, 1)
        s.control(port: 2, 3, 1)                             // PORT_READY 2 (no chardev)
        s.serve(3)
        s.buffers(0, count: 4, at: 0x5000, length: 0x100)
        s.buffers(1, count: 4, at: 0x5400, length: 0x100)
        s.hostInput(port: 0, "hello, console\n")
        s.hostInput(port: 1, String(repeating: "named port input ", count: 40))   // more than one buffer
        s.output(port: 0, "to the console\n", at: 0x7000)
        s.serve(1)
        s.output(port: 1, "to the named port", at: 0x7100)
        s.serve(5)
        s.b.u8(16).u8(UInt8(ascii: "!"))                      // emergency write
        s.b.u8(15).bool(false)                                // the named port's host side leaves
        s.output(port: 1, "discarded", at: 0x7200)
        s.serve(5)
        s.b.u8(15).bool(true)                                 // and comes back
        s.serve(3)

        // Without MULTIPORT: port 0 is open once the driver is running.
        let c = SerialScript()
        c.negotiate(emergency)
        for q in 0..<2 { c.queue(q) }
        c.driverOK()
        c.buffers(0, count: 2, at: 0x5000, length: 0x80)
        c.hostInput(port: 0, "console input")
        c.output(port: 0, "console output", at: 0x7000)
        c.serve(1)

        // Hostile control messages: unknown ports, failures, short, huge names.
        let h = SerialScript()
        h.negotiate(multiport)
        for q in 0..<4 { h.queue(q) }
        h.driverOK()
        h.buffers(4, count: 8, at: 0x4000, length: 0x10)                       // too small for names
        h.control(port: 0xff, 0, 1)                          // DEVICE_READY from an id of 2^32 - 1
        h.control(port: 4, 3, 1)                             // no port 4
        h.control(port: 1, 3, 0)                             // PORT_READY failure
        h.control(port: 0, 0, 0)                             // DEVICE_READY failure
        h.control(port: 1, 7, 1, extra: Array(repeating: 0x41, count: 200))
        h.b.u8(8).u8(3).u8(0).u16(0x3800).u16(3).bool(false).bool(false)      // a 3-byte message
        h.serve(3)
        return [("multiport-handshake-data", s.b.bytes), ("console-without-multiport", c.b.bytes),
                ("hostile-control-messages", h.b.bytes)]
    }

    // MARK: QMP

    static func qmp() -> [(String, [UInt8])] {
        func chunk(_ text: String) -> [UInt8] {
            let bytes = Array(text.utf8)
            return [1] + le(UInt16(bytes.count)) + bytes
        }
        let session = [
            #"{"execute": "query-fuzz", "id": 0}"#,
            #"{"execute": "qmp_capabilities", "arguments": {"enable": ["oob"]}}"#,
            #"{"execute": "ping", "id": "a"}"#,
            #"{"execute": "echo", "arguments": {"text": "hi", "n": -1, "flag": true, "tags": ["x"], "value": {"a": [1, 2.5, null]}}, "id": {"nested": [1]}}"#,
            #"{"exec-oob": "x-oob-ping", "id": 18446744073709551615}"#,
            #"{"execute": "echo", "arguments": {"text": "\ud83d\ude00 \u00e9\/"}, "id": "\uD834\uDD1E"}"#,
            #"{"execute": "fail"}"#,
            #"{"execute": "query-fuzz"}"#,
            #"{"execute": "echo", "arguments": {"text": 3}}"#,
            #"{"execute": "qmp_capabilities"}"#,
        ].flatMap(chunk)
        let split = chunk(#"{"execute": "echo", "argu"#) + chunk(#"ments": {"text": "split\nacross"}, "id": 3}"#)
            + chunk(#"[1, 2] {"execute": tru} "bare" 12 ]"#) + chunk(#"{"execute": "ping"}"#)
        // A generated echo (value: an object with a string member), written with escapes.
        let generated: [UInt8] = chunk(#"{"execute":"qmp_capabilities"}"#)
            + [2, 0x16, 7, 2, 5, 3, 4, 0x41, 5, 0xe9, 0, 4, 0x3d, 0xd8, 0x01, 0, 0, 0, 0, 0, 0, 0, 0x10, 0x77, 1, 2, 0x63, 0x64, 1, 0, 0]
        let deep: [UInt8] = chunk(#"{"execute":"qmp_capabilities"}"#) + [3] + le(UInt16(1000)) + [4]
            + [3] + le(UInt16(1100)) + [0] + [4] + le(UInt16(400)) + [0x87] + [5] + le(UInt16(300)) + [2, 0x5c, 0x6e] + [1]
        return [("negotiate-and-commands", session), ("split-and-broken-input", split),
                ("generated-request", generated), ("deep-and-long", deep)]
    }
}
