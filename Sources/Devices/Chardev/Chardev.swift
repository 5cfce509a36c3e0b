import Logging
import Synchronization
import SystemPackage
import VMMSys

/// A character backend: the host end of a serial port, a virtio console port or a monitor —
/// standard I/O, a file, a pipe, a pty, or a unix/TCP socket as server or client. Input is
/// read on the I/O thread only as fast as the frontend takes it (its `chardevCanReceive`), so
/// nothing read is ever dropped; output is written from the frontend's thread without
/// blocking, except on standard output and files, which block as QEMU's do.
///
/// A server socket takes one client at a time (the listener is not polled while one is
/// connected); each connection and disconnection is an `opened`/`closed` event. A pty counts
/// as connected while its slave is open, checked again every second while it is not.
/// Output with nobody connected (a server without client, a pty without slave) is dropped.
/// QEMU: chardev/char.c, char-stdio.c, char-file.c, char-pipe.c, char-pty.c, char-socket.c.
public final class Chardev: SerialBackend, Sendable {
    /// The host side.
    public enum Transport: Sendable {
        /// Nothing in, nothing out.
        case null
        /// Standard output; standard input too when `readsInput` (vmm's serial port on stdio
        /// reads standard input itself, so a chardev never competes with it).
        case stdio(readsInput: Bool)
        /// Output to a file (opened by the caller).
        case file(FileDescriptor)
        /// Input and output descriptors (FIFOs: path.in and path.out, or one both ways).
        case pipe(input: FileDescriptor, output: FileDescriptor)
        /// A pseudo-terminal whose master this keeps; connected while its slave is open.
        case pty(PseudoTerminal)
        /// A listening socket: clients one after another.
        case server(SocketListener)
        /// A socket connected at start (no reconnection).
        case client(SocketConnection)
    }

    /// The `id=` the user gave it (what `-serial chardev:ID`, `-mon chardev=ID` and `chardev=`
    /// name).
    public let id: String
    /// The host side it reads and writes.
    public let transport: Transport
    private let logger: Logger

    private struct State {
        var frontend: WeakFrontend = WeakFrontend()
        /// Weak: the I/O thread keeps this chardev (its watches) alive, not the reverse.
        weak var ioThread: IOThread?
        /// The live connection (server's accepted client, the client socket) kept open here.
        var connection: SocketConnection?
        var inputWatch: IOThread.Watch?
        var listenWatch: IOThread.Watch?
        var writableWatch: IOThread.Watch?
        var whenWritable: (@Sendable () -> Void)?
        var connected = false
        var dropped: UInt64 = 0
    }

    private let state = Mutex(State())
    /// The I/O thread's read buffer.
    private let buffer = Mutex([UInt8](repeating: 0, count: 4096))
    private static let retryDelay: Duration = .milliseconds(20), ptyPollInterval: Duration = .seconds(1)

    /// - Parameter initialClient: for a server, a client already accepted (QEMU's `wait=on`).
    public init(id: String, transport: Transport, initialClient: SocketConnection? = nil, logger: Logger = Logger(label: "vmm.chardev")) {
        self.id = id
        self.transport = transport
        self.logger = logger
        var first = initialClient
        if case .client(let c) = transport { first = c }
        if let c = first {
            try? NonBlockingIO.setNonBlocking(c.fileDescriptor)
            state.withLock {
                $0.connection = c
                $0.connected = true
            }
        }
    }

    /// Connects the device side and starts reading input on `ioThread`. A backend that is
    /// already open (stdio, a file, a pipe, a connected client) reports `opened` at once, as
    /// QEMU does to a frontend attaching to an open chardev. One frontend per chardev.
    /// - Parameter retain: keep the frontend alive (an adapter nobody else holds); otherwise it
    ///   is held weakly (a device that owns this chardev).
    public func attach(_ frontend: any ChardevFrontend, ioThread: IOThread, retain: Bool = false) throws(SystemError) {
        state.withLock {
            $0.frontend = WeakFrontend(frontend, retain: retain)
            $0.ioThread = ioThread
        }
        let input: FileDescriptor?
        var openNow = true
        switch transport {
        case .null, .file: input = nil
        case .stdio(let reads): input = reads ? FileDescriptor.standardInput : nil
        case .pipe(let i, _): input = i
        case .pty(let p):
            input = p.master
            openNow = false
        case .client(let c): input = c.fileDescriptor
        case .server(let listener):
            // With a client accepted already (wait=on), read it; listen again when it leaves.
            input = state.withLock { $0.connection?.fileDescriptor }
            openNow = input != nil
            let watch = try ioThread.watch(listener.fileDescriptor, events: input == nil ? .readable : []) { _ in self.accept() }
            state.withLock { $0.listenWatch = watch }
        }
        if let input {
            let watch = try ioThread.watch(input, events: .readable) { events in self.inputReady(events) }
            state.withLock { $0.inputWatch = watch }
            // A pty: find out now whether a slave is open.
            if case .pty = transport { ioThread.schedule(watch) }
        }
        if openNow {
            state.withLock { $0.connected = true }
            frontend.chardevEvent(.opened)
        }
    }

    /// Whether a far side is there (always, for stdio, files, pipes and null).
    public var isConnected: Bool { state.withLock { $0.connected } }
    /// Output bytes dropped for want of a reader.
    public var droppedBytes: UInt64 { state.withLock { $0.dropped } }

    /// The frontend has room again: read input again. QEMU: qemu_chr_fe_accept_input().
    public func acceptInput() {
        let (thread, watch) = state.withLock { ($0.ioThread, $0.inputWatch) }
        guard let thread, let watch else { return }
        try? thread.setEvents(watch, .readable)
        thread.schedule(watch)
    }

    // MARK: Output

    /// A UART's bytes: all of them, or (nobody connected, or the reader is not keeping up)
    /// none. QEMU: qemu_chr_fe_write_all() for blocking backends; serial_xmit()'s drop after
    /// its retries for the others.
    public func write(_ bytes: [UInt8]) {
        _ = writeSome(bytes[...], all: true)
    }

    /// Writes what the backend takes now; returns the count (0: it would block — ask
    /// `whenWritable`), or nil when nobody is connected (the bytes are gone).
    /// QEMU: qemu_chr_fe_write().
    public func writeSome(_ bytes: ArraySlice<UInt8>) -> Int? { writeSome(bytes, all: false) }

    private func writeSome(_ bytes: ArraySlice<UInt8>, all: Bool) -> Int? {
        guard !bytes.isEmpty else { return 0 }
        switch transport {
        case .null: return bytes.count
        case .stdio: return writeFully(FileDescriptor.standardOutput, Array(bytes)) ? bytes.count : nil
        case .file(let fd): return writeFully(fd, Array(bytes)) ? bytes.count : nil
        case .pipe(_, let out): return nonBlocking(out, bytes, all: all)
        case .pty(let p):
            guard state.withLock({ $0.connected }) else { return drop(bytes.count) }
            return nonBlocking(p.master, bytes, all: all)
        case .server, .client:
            return state.withLock { s -> Int? in
                guard let c = s.connection else {
                    s.dropped &+= UInt64(bytes.count)
                    return nil
                }
                return Self.writeNow(c.fileDescriptor, bytes, all: all, dropped: &s.dropped)
            }
        }
    }

    private func nonBlocking(_ fd: FileDescriptor, _ bytes: ArraySlice<UInt8>, all: Bool) -> Int? {
        state.withLock { s in Self.writeNow(fd, bytes, all: all, dropped: &s.dropped) }
    }

    private func drop(_ n: Int) -> Int? {
        state.withLock { $0.dropped &+= UInt64(n) }
        return nil
    }

    /// One non-blocking write (or, for `all`, writes until done or the descriptor is full,
    /// dropping the rest). A failed write (the peer went away) is reported by the input side.
    private static func writeNow(_ fd: FileDescriptor, _ bytes: ArraySlice<UInt8>, all: Bool, dropped: inout UInt64) -> Int? {
        var done = bytes.startIndex
        while done < bytes.endIndex {
            switch NonBlockingIO.write(fd, bytes[done...]) {
            case .transferred(let n): done += n
            case .wouldBlock:
                if all { dropped &+= UInt64(bytes.endIndex - done) }
                return all ? bytes.count : done - bytes.startIndex
            case .endOfFile, .failed:
                dropped &+= UInt64(bytes.endIndex - done)
                return done == bytes.startIndex ? nil : done - bytes.startIndex
            }
            if !all { break }
        }
        return done - bytes.startIndex
    }

    /// Calls `body` once on the I/O thread when the output can take bytes again (a frontend
    /// that was told 0 by `writeSome`). QEMU: qemu_chr_fe_add_watch(G_IO_OUT).
    public func whenWritable(_ body: @escaping @Sendable () -> Void) {
        let fd: FileDescriptor?
        switch transport {
        case .pipe(_, let out): fd = out
        case .pty(let p): fd = p.master
        case .server, .client: fd = state.withLock { $0.connection?.fileDescriptor }
        default: fd = nil
        }
        guard let fd, let thread = state.withLock({ $0.ioThread }) else { return body() }
        state.withLock { $0.whenWritable = body }
        guard state.withLock({ $0.writableWatch == nil }) else { return }
        let watch = try? thread.watch(fd, events: .writable) { _ in self.writable() }
        state.withLock { $0.writableWatch = watch }
        if watch == nil { body() }
    }

    private func writable() -> IOThread.Next {
        let (thread, watch, body) = state.withLock { s -> (IOThread?, IOThread.Watch?, (@Sendable () -> Void)?) in
            defer {
                s.writableWatch = nil
                s.whenWritable = nil
            }
            return (s.ioThread, s.writableWatch, s.whenWritable)
        }
        if let thread, let watch { thread.unwatch(watch) }
        body?()
        return .idle
    }

    // MARK: Input (the I/O thread)

    private func inputReady(_ events: IOThread.Events) -> IOThread.Next {
        let (frontend, thread, watch) = state.withLock { ($0.frontend.frontend, $0.ioThread, $0.inputWatch) }
        guard let frontend, let thread, let watch else { return .idle }
        if case .pty(let p) = transport {
            // Connected while the slave is open (no hang-up); without one, look again every
            // second. QEMU: pty_chr_state(), pty_chr_timer().
            if events.contains(.hangUp) || NonBlockingIO.hasHungUp(p.master) {
                try? thread.setEvents(watch, [])
                setConnected(false, frontend)
                return .at(.now + Self.ptyPollInterval)
            }
            setConnected(true, frontend)
            if events.isEmpty {
                try? thread.setEvents(watch, .readable)
                return .idle
            }
        }
        if events.contains(.hangUp), isSocket {
            // The client left (noticed even while not reading). QEMU: tcp_chr_hup().
            disconnect(frontend)
            return .idle
        }
        let room = frontend.chardevCanReceive()
        guard room > 0 else {
            // No room: stop reading, but a socket still watches for its peer leaving.
            try? thread.setEvents(watch, isSocket ? .hangUp : [])
            return frontend.callsAcceptInput ? .idle : .at(.now + Self.retryDelay)
        }
        try? thread.setEvents(watch, .readable)
        guard let fd = inputDescriptor else { return .idle }
        let result = buffer.withLock { b -> IOResult in
            let r = NonBlockingIO.read(fd, into: &b, count: min(room, b.count))
            if case .transferred(let n) = r { frontend.chardevReceive(b[0..<n]) }
            return r
        }
        switch result {
        case .transferred, .wouldBlock:
            return .idle
        case .endOfFile, .failed:
            disconnect(frontend)
            return .idle
        }
    }

    private var isSocket: Bool {
        switch transport {
        case .server, .client: return true
        default: return false
        }
    }

    private var inputDescriptor: FileDescriptor? {
        switch transport {
        case .stdio: return .standardInput
        case .pipe(let i, _): return i
        case .pty(let p): return p.master
        case .server, .client: return state.withLock { $0.connection?.fileDescriptor }
        case .null, .file: return nil
        }
    }

    private func setConnected(_ connected: Bool, _ frontend: any ChardevFrontend) {
        let changed = state.withLock { s -> Bool in
            defer { s.connected = connected }
            return s.connected != connected
        }
        if changed { frontend.chardevEvent(connected ? .opened : .closed) }
    }

    /// The peer went away: a socket is closed and (for a server) the next client awaited;
    /// standard input or a pipe at its end stops being read. A pty's slave closing is a hang-up.
    private func disconnect(_ frontend: any ChardevFrontend) {
        let (thread, watch, listen) = state.withLock { ($0.ioThread, $0.inputWatch, $0.listenWatch) }
        switch transport {
        case .server, .client:
            if let thread, let watch { thread.unwatch(watch) }
            let wasConnected = state.withLock { s -> Bool in
                s.connection?.shutdown()
                s.connection = nil
                s.inputWatch = nil
                defer { s.connected = false }
                return s.connected
            }
            if wasConnected { frontend.chardevEvent(.closed) }
            if let thread, let listen { try? thread.setEvents(listen, .readable) }
        case .pty:
            // Reads fail (EIO) once the slave closes; the hang-up check above takes it from here.
            if let thread, let watch { thread.schedule(watch) }
        default:
            if let thread, let watch { thread.unwatch(watch) }
            state.withLock { $0.inputWatch = nil }
        }
    }

    /// A client is waiting on the server socket: take it (one at a time).
    private func accept() -> IOThread.Next {
        guard case .server(let listener) = transport else { return .idle }
        let (thread, listen, frontend) = state.withLock { ($0.ioThread, $0.listenWatch, $0.frontend.frontend) }
        guard let thread, let listen else { return .idle }
        guard let connection = try? listener.accept() else { return .idle }
        try? NonBlockingIO.setNonBlocking(connection.fileDescriptor)
        try? thread.setEvents(listen, [])
        state.withLock {
            $0.connection = connection
            $0.connected = true
        }
        do {
            let watch = try thread.watch(connection.fileDescriptor, events: .readable) { events in self.inputReady(events) }
            state.withLock { $0.inputWatch = watch }
        } catch {
            logger.warning("chardev \(id): \(error)")
        }
        frontend?.chardevEvent(.opened)
        return .idle
    }
}

/// The frontend, weakly: the device owns its chardev.
struct WeakFrontend: @unchecked Sendable {
    weak var weakFrontend: (any ChardevFrontend)?
    var strongFrontend: (any ChardevFrontend)?
    init(_ f: (any ChardevFrontend)? = nil, retain: Bool = false) {
        weakFrontend = f
        strongFrontend = retain ? f : nil
    }
    var frontend: (any ChardevFrontend)? { strongFrontend ?? weakFrontend }
}
