import Devices
import Foundation
import Synchronization
import SystemPackage
import Testing
import TestSupport
import VMMSys

/// A frontend that takes at most `room` bytes and records what arrives and the events.
final class RecordingFrontend: ChardevFrontend {
    let room = Atomic<Int>(1 << 20)
    let received = Mutex<[UInt8]>([])
    let events = Mutex<[ChardevEvent]>([])
    func chardevCanReceive() -> Int { room.load(ordering: .relaxed) }
    func chardevReceive(_ bytes: ArraySlice<UInt8>) {
        received.withLock { $0 += bytes }
        room.subtract(bytes.count, ordering: .relaxed)
    }
    func chardevEvent(_ event: ChardevEvent) { events.withLock { $0.append(event) } }
}

/// The chardev layer on the I/O thread: flow control (input is read only as the frontend takes
/// it: nothing lost, nothing reordered), a server socket's clients one after another with
/// opened/closed events, output with and without a reader. QEMU: chardev/char-socket.c,
/// qemu_chr_fe_accept_input().
@Suite struct ChardevTests {
    @Test func inputFollowsTheFrontendsRoom() throws {
        let thread = try IOThread()
        thread.start()
        defer { thread.stop() }
        let pair = try SocketPair(.stream)
        let chardev = Chardev(id: "c", transport: .client(SocketConnection(fileDescriptor: FileDescriptor(rawValue: dup(pair.first.rawValue)))))
        let frontend = RecordingFrontend()
        frontend.room.store(10, ordering: .relaxed)
        try chardev.attach(frontend, ioThread: thread)
        #expect(frontend.events.withLock { $0 } == [.opened])
        let data = (0..<100).map { UInt8($0) }
        #expect(NonBlockingIO.write(pair.second, data[...]) == .transferred(100))
        #expect(pollUntil { frontend.received.withLock { $0.count } == 10 })
        #expect(pollUntil(timeout: .milliseconds(200)) { frontend.received.withLock { $0.count } > 10 } == false)
        frontend.room.store(1000, ordering: .relaxed)
        chardev.acceptInput()
        #expect(pollUntil { frontend.received.withLock { $0 } == data })
    }

    @Test func serverTakesClientsOneAfterAnother() throws {
        let thread = try IOThread()
        thread.start()
        defer { thread.stop() }
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("chardev-\(getpid())-\(UInt32.random(in: 0...UInt32.max))").path
        let chardev = Chardev(id: "s", transport: .server(try SocketListener(.unix(path))))
        let frontend = RecordingFrontend()
        try chardev.attach(frontend, ioThread: thread)
        #expect(frontend.events.withLock { $0 }.isEmpty && !chardev.isConnected)
        #expect(chardev.writeSome([1, 2, 3][...]) == nil)                   // nobody there: dropped
        #expect(chardev.droppedBytes == 3)
        for round in 0..<2 {
            let client = try SocketConnection(connectingTo: .unix(path))
            #expect(pollUntil { frontend.events.withLock { $0.count } == 2 * round + 1 })
            #expect(chardev.isConnected)
            client.write(Array("ping \(round)".utf8))
            #expect(pollUntil { String(decoding: frontend.received.withLock { $0 }, as: UTF8.self).hasSuffix("ping \(round)") })
            #expect(chardev.writeSome(Array("pong".utf8)[...]) == 4)
            #expect(try client.read(maxBytes: 16) == Array("pong".utf8))
            client.shutdown()
            #expect(pollUntil { frontend.events.withLock { $0.count } == 2 * round + 2 })
        }
        #expect(frontend.events.withLock { $0 } == [.opened, .closed, .opened, .closed])
    }

    @Test func serialPortFrontendFeedsTheUART() throws {
        let thread = try IOThread()
        thread.start()
        defer { thread.stop() }
        let pair = try SocketPair(.stream)
        let chardev = Chardev(id: "serial0", transport: .client(SocketConnection(fileDescriptor: FileDescriptor(rawValue: dup(pair.first.rawValue)))))
        let port = SerialPort(backend: chardev)
        try chardev.attach(SerialPortFrontend(port), ioThread: thread, retain: true)
        _ = NonBlockingIO.write(pair.second, Array("hello".utf8)[...])
        #expect(pollUntil { port.pendingInput == 5 })
    }
}
