import Testing
#if canImport(Glibc)
import Glibc
#endif
import VMMSys
@testable import QMP

/// The server over a real unix socket: hostile input gets error replies and the server keeps
/// answering; clients come one after another; events reach only a negotiated client.
@Suite struct QMPServerTests {
    func line(_ c: SocketConnection) throws -> String {
        var bytes: [UInt8] = []
        while !bytes.reversed().starts(with: [0x0a, 0x0d]) {
            let b = try c.read(maxBytes: 1)
            if b.isEmpty { break }
            bytes += b
        }
        return String(decoding: bytes, as: UTF8.self).trimmingSuffix()
    }

    @Test func hostileInputAndSeveralClients() throws {
        let path = "/tmp/qmp-test-\(getpid()).sock"
        let server = QMPServer(listener: try SocketListener(.unix(path)),
                               commands: [QMPCommand("ping") { _ in "pong" }])
        try server.start()
        defer { server.stop() }
        for round in 0..<3 {
            let c = try SocketConnection(connectingTo: .unix(path))
            #expect(try line(c).hasPrefix(#"{"QMP": {"version""#))
            server.emit("EARLY")                                        // not negotiated: not sent
            c.write(Array(#"{"execute": "qmp_capabilities"}"#.utf8))
            #expect(try line(c) == #"{"return": {}}"#)
            // Garbage: every reply up to the next good request is an error, and it comes.
            c.write(Array("}}}{\"execute\": [1, {\"x\"".utf8) + [0xff, 0xfe] + Array("}]}".utf8))
            c.write(Array(("{\"execute\": \"ping\", \"arguments\": {\"pad\": \"" + String(repeating: "x", count: 2 << 20) + "\"}}").utf8))
            c.write(Array(#"{"execute": "ping", "id": "sync"}"#.utf8))
            var errors: [String] = []
            while true {
                let reply = try line(c)
                if reply == #"{"return": "pong", "id": "sync"}"# || reply.isEmpty { break }
                errors.append(reply)
            }
            #expect(!errors.isEmpty && errors.allSatisfy { $0.contains(#""class": "GenericError""#) }, "\(errors)")
            #expect(errors.contains { $0.contains("message too large") })
            c.write(Array(#"{"execute": "ping", "arguments": {"unknown": 1}, "id": 7}"#.utf8))
            #expect(try line(c) == #"{"id": 7, "error": {"class": "GenericError", "desc": "Parameter 'unknown' is unexpected"}}"#)
            server.emit("TICK", data: JSONValue.object([("round", .int(Int64(round)))]))
            let event = try line(c)
            #expect(event.contains(#""event": "TICK""#) && event.contains(#""round": \#(round)"#))
            c.write(Array(#"{"execute": "ping", "id": "last"}"#.utf8))
            #expect(try line(c) == #"{"return": "pong", "id": "last"}"#)
            c.shutdown()
        }
    }
}

extension String {
    fileprivate func trimmingSuffix() -> String {
        var s = self
        while let last = s.last, last == "\r\n" || last == "\r" || last == "\n" { s.removeLast() }
        return s
    }
}
