import Foundation
import Testing
import VMMSys

/// A minimal QMP client for tests that drive a running vmm or QEMU: connects (retrying while the
/// server starts), negotiates, sends commands and reads replies and events line by line. Reads
/// block; they end when the peer closes, which the child's own timeout guarantees.
final class QMPClient {
    private let connection: SocketConnection
    private var buffer: [UInt8] = []
    /// Every event seen so far, by name, in order.
    private(set) var events: [String] = []

    /// Connects to the unix socket at `path`, polling for it until `seconds` pass (the server
    /// process is starting), reads the greeting and negotiates capabilities.
    init(path: String, seconds: Double = 60) throws {
        let deadline = Date().addingTimeInterval(seconds)
        var connected: SocketConnection?
        while connected == nil {
            connected = try? SocketConnection(connectingTo: .unix(path))
            if connected == nil {
                guard Date() < deadline else { throw HarnessError("no QMP server at \(path) after \(seconds) s") }
                usleep(20_000)   // polling for the socket file, bounded by the deadline
            }
        }
        connection = connected!
        _ = try message()
        _ = try execute("qmp_capabilities")
    }

    /// The next JSON object the server sends, or nil when it closed.
    func message() throws -> [String: Any]? {
        while true {
            if let newline = buffer.firstIndex(of: 0x0a) {
                let line = Array(buffer[..<newline])
                buffer.removeSubrange(...newline)
                guard let object = try JSONSerialization.jsonObject(with: Data(line)) as? [String: Any] else { continue }
                if let event = object["event"] as? String { events.append(event) }
                return object
            }
            let more = try connection.read()
            if more.isEmpty { return nil }
            buffer += more
        }
    }

    /// Sends `command` and returns its reply (`return` or `error` member); events read on the
    /// way are recorded.
    @discardableResult
    func execute(_ command: String, _ arguments: [String: Any]? = nil) throws -> [String: Any] {
        var request: [String: Any] = ["execute": command]
        if let arguments { request["arguments"] = arguments }
        connection.write(Array(try JSONSerialization.data(withJSONObject: request)) + [0x0a])
        while let m = try message() {
            if m["return"] != nil || m["error"] != nil { return m }
        }
        throw HarnessError("QMP connection closed waiting for the reply to \(command)")
    }

    /// Reads until event `name` arrives (true) or the server closes (false).
    func waitForEvent(_ name: String) throws -> Bool {
        if events.contains(name) { return true }
        while let m = try message() {
            if m["event"] as? String == name { return true }
        }
        return false
    }
}
