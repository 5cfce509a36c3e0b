import Synchronization
import VMMSys
#if canImport(Glibc)
import Glibc
#endif

/// A QMP monitor on a listening socket: clients connect one after another (as to QEMU's
/// socket chardev in server mode), each gets the greeting, negotiates, and sends commands;
/// events go to the connected client once it has negotiated. Commands run on the connection's
/// thread, one at a time across all clients. QEMU: monitor/qmp.c over a socket chardev.
public final class QMPServer: Sendable {
    /// The socket clients connect to (UNIX or TCP). QEMU: the socket chardev's listener.
    public let listener: SocketListener
    private let commands: [QMPCommand]
    private let greeting: QMPSession.Greeting
    /// The connected client and whether it negotiated (events wait for that).
    private let client = Mutex<(connection: SocketConnection?, negotiated: Bool)>((nil, false))
    /// One command at a time, whichever client sent it.
    private let execution = Mutex<Void>(())
    private let stopped = Atomic<Bool>(false)
    /// Signalled when the first client connects (for `wait=on`).
    private let firstClient = Mutex<Bool>(false)

    /// A server answering `commands` on `listener`; nothing is accepted until ``start()``.
    /// QEMU: `monitor_init_qmp()` on a `server=on` socket chardev.
    public init(listener: SocketListener, commands: [QMPCommand], greeting: QMPSession.Greeting = .init()) {
        self.listener = listener
        self.commands = commands
        self.greeting = greeting
    }

    /// Starts accepting clients on a thread of its own.
    public func start() throws(SystemError) {
        try HostThread.start(name: "qmp") { [self] in
            while !stopped.load(ordering: .acquiring) {
                guard let connection = try? listener.accept() else { continue }
                serve(connection)
            }
        }
    }

    /// Stops serving: waits for a command being executed to have sent its reply (so `quit`'s
    /// reply is out before the process ends), then disconnects the client.
    public func stop() {
        stopped.store(true, ordering: .releasing)
        execution.withLock { _ in }
        client.withLock { $0.connection?.shutdown() }
    }

    /// Blocks until a first client has connected (QEMU's `wait=on`).
    public func waitForFirstClient() {
        while !firstClient.withLock({ $0 }) && !stopped.load(ordering: .acquiring) { usleep(1000) }
    }

    /// Sends an event to the client if it has negotiated. QEMU: monitor_qapi_event_emit().
    public func emit(_ event: String, data: JSONValue? = nil) {
        let now = HostClock.realtime()
        let message = QMPSession.event(event, data: data, seconds: now.seconds, microseconds: now.nanoseconds / 1000)
        client.withLock { c in
            guard c.negotiated, let connection = c.connection else { return }
            connection.write(Array((message.serialized + "\r\n").utf8))
        }
    }

    private func serve(_ connection: SocketConnection) {
        var session = QMPSession(commands: commands, greeting: greeting)
        client.withLock { $0 = (connection, false) }
        firstClient.withLock { $0 = true }
        defer { client.withLock { $0 = (nil, false) } }
        send(session.greetingMessage, connection)
        while !stopped.load(ordering: .acquiring) {
            guard let bytes = try? connection.read(maxBytes: 65536), !bytes.isEmpty else { return }
            // Replies go out before the lock is released, so `stop()` can wait for them.
            execution.withLock { _ in
                for r in session.receive(bytes) {
                    if session.negotiated { client.withLock { $0.negotiated = true } }
                    send(r, connection)
                }
            }
        }
    }

    private func send(_ message: JSONValue, _ connection: SocketConnection) {
        // Replies and events must not interleave mid-line.
        // A client that went away is noticed by its reader; nothing to do here.
        _ = client.withLock { _ in connection.write(Array((message.serialized + "\r\n").utf8)) }
    }
}
