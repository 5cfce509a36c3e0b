import Devices
import Foundation
import Memory
import SystemPackage
import Testing
import TestSupport
import VMMSys
@testable import VirtIO

/// virtio-serial's MULTIPORT control protocol and data path over the PCI transport, the host
/// side on socket pairs. QEMU: hw/char/virtio-serial-bus.c.
@Suite struct VirtIOSerialTests {
    final class Guest {
        let t: TransportHarness
        var avail = [UInt16](repeating: 0, count: 6), seen = [UInt16](repeating: 0, count: 6)
        let size: UInt16 = 8
        init(_ t: TransportHarness) { self.t = t }
        func desc(_ q: Int) -> UInt64 { 0x10000 + UInt64(q) * 0x1000 }
        func submit(_ q: Int, _ address: UInt64, _ length: UInt32, writable: Bool) {
            let g = t.guest, d = avail[q] % size
            let at = desc(q) + 16 * UInt64(d)
            try! g.store(address, at: at); try! g.store(length, at: at + 8)
            try! g.store(UInt16(writable ? 2 : 0), at: at + 12); try! g.store(UInt16(0), at: at + 14)
            try! g.store(d, at: desc(q) + 0x400 + 4 + 2 * UInt64(d))
            avail[q] &+= 1
            try! g.store(avail[q], at: desc(q) + 0x400 + 2)
            t.kick(UInt16(q))
        }
        /// The next used entry's buffer contents on receive queue `q` (buffers at 0x40000 + q·0x1000 + d·0x100).
        func next(_ q: Int) -> [UInt8]? {
            guard t.waitUntil(10, { (try? self.t.guest.load(UInt16.self, at: self.desc(q) + 0x800 + 2)) != self.seen[q] }) else { return nil }
            let slot = UInt64(seen[q] % size)
            seen[q] &+= 1
            let id = try! t.guest.load(UInt32.self, at: desc(q) + 0x800 + 4 + 8 * slot)
            let len = try! t.guest.load(UInt32.self, at: desc(q) + 0x800 + 8 + 8 * slot)
            return try! t.guest.read(at: buffer(q, UInt16(id)), count: Int(len))
        }
        func buffer(_ q: Int, _ d: UInt16) -> UInt64 { 0x40000 + UInt64(q) * 0x1000 + UInt64(d) * 0x100 }
        func post(_ q: Int) { submit(q, buffer(q, avail[q] % size), 0x100, writable: true) }
        func control(_ id: UInt32, _ event: UInt16, _ value: UInt16) {
            var m = [UInt8](); for i in 0..<4 { m.append(UInt8(truncatingIfNeeded: id >> (8 * UInt32(i)))) }
            m += [UInt8(event & 0xff), UInt8(event >> 8), UInt8(value & 0xff), UInt8(value >> 8)]
            try! t.guest.write(m, at: 0x80000 + UInt64(avail[3] % size) * 16)
            submit(3, 0x80000 + UInt64(avail[3] % size) * 16, 8, writable: false)
        }
        func event(_ m: [UInt8]?) -> String {
            guard let m, m.count >= 8 else { return "none" }
            let id = UInt32(m[0]) | UInt32(m[1]) << 8, e = UInt16(m[4]) | UInt16(m[5]) << 8, v = UInt16(m[6]) | UInt16(m[7]) << 8
            return m.count > 8 ? "\(id):\(e):\(v):\(String(decoding: m[8...].prefix { $0 != 0 }, as: UTF8.self))" : "\(id):\(e):\(v)"
        }
    }

    @Test func multiportHandshakeAndData() throws {
        let thread = try IOThread()
        thread.start()
        defer { thread.stop() }
        let consoleHost = try SocketPair(.stream), portHost = try SocketPair(.stream)
        func chardev(_ id: String, _ p: SocketPair) -> Chardev {
            Chardev(id: id, transport: .client(SocketConnection(fileDescriptor: FileDescriptor(rawValue: dup(p.first.rawValue)))))
        }
        let serial = try VirtIOSerial(maxPorts: 4)
        let console = try serial.addPort(nr: nil, name: nil, console: true, chardev: chardev("c0", consoleHost))
        let named = try serial.addPort(nr: nil, name: "org.test", console: false, chardev: chardev("c1", portHost))
        #expect(console.id == 0 && named.id == 1)
        #expect(throws: VirtIOError.self) { try serial.addPort(nr: 0, name: nil, console: false, chardev: nil) }
        #expect(throws: VirtIOError.self) { try serial.addPort(nr: nil, name: "org.test", console: false, chardev: nil) }
        #expect(throws: VirtIOError.self) { try serial.addPort(nr: 9, name: nil, console: false, chardev: nil) }
        let t = try TransportHarness(serial, ramSize: 0x100000)
        try console.chardev!.attach(console, ioThread: t.thread)
        try named.chardev!.attach(named, ioThread: t.thread)
        #expect(serial.features == 6 && serial.readConfig(offset: 4, size: 4) == 4)
        let g = Guest(t)
        t.write(0x14, 0, 1); t.write(0x14, 3, 1)
        t.write(0x08, 0, 4); t.write(0x0c, 2, 4); t.write(0x08, 1, 4); t.write(0x0c, 1, 4)
        t.write(0x14, 11, 1)
        t.enableMSIX()
        for q in 0..<6 { t.setQueue(UInt16(q), size: g.size, desc: g.desc(q), avail: g.desc(q) + 0x400, used: g.desc(q) + 0x800) }
        t.driverOK()
        for _ in 0..<6 { g.post(2) }
        g.control(0xffff_ffff, 0, 1)                                     // DEVICE_READY
        #expect(g.event(g.next(2)) == "0:1:1" && g.event(g.next(2)) == "1:1:1")
        g.control(0, 3, 1)                                               // PORT_READY 0
        #expect(g.event(g.next(2)) == "0:4:1" && g.event(g.next(2)) == "0:6:1")   // CONSOLE_PORT, PORT_OPEN
        g.control(1, 3, 1)                                               // PORT_READY 1
        #expect(g.event(g.next(2)) == "1:7:1:org.test" && g.event(g.next(2)) == "1:6:1")
        // Hostile control messages: short, unknown port: ignored, the device keeps working.
        try t.guest.write([1, 2, 3], at: 0x90000)
        g.submit(3, 0x90000, 3, writable: false)
        g.control(77, 6, 1)
        #expect(t.status & 0x40 == 0)
        // Host → guest only once the guest opened the port.
        for _ in 0..<4 { g.post(0) }
        _ = NonBlockingIO.write(consoleHost.second, Array("early".utf8)[...])
        g.control(0, 6, 1)                                               // the guest opens port 0
        #expect(g.next(0) == Array("early".utf8))
        // Guest → host on the named port.
        try t.guest.write(Array("to host".utf8), at: 0x95000)
        g.submit(5, 0x95000, 7, writable: false)
        var got = [UInt8](repeating: 0, count: 16)
        #expect(pollUntil { if case .transferred(let n) = NonBlockingIO.read(portHost.second, into: &got, count: 16) { got = Array(got[0..<n]); return true }; return false })
        #expect(got == Array("to host".utf8))
        // The named port's host side goes away: PORT_OPEN 0 (on a fresh control buffer: the
        // six posted went to the handshake).
        g.post(2)
        portHost.closeSecond()
        #expect(g.event(g.next(2)) == "1:6:0")
    }
}

extension SocketPair {
    func closeSecond() { _ = shutdown(second.rawValue, Int32(SHUT_RDWR)) }
}
