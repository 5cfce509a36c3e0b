import SystemPackage
import Synchronization
import VMMSys
#if canImport(Glibc)
import Glibc
#endif

/// A UDP socket bound to an IPv4 address and port, closed with the object: the host side of
/// the network tests and benchmark (an echo server, a stream source and sink).
public final class UDPSocket: Sendable {
    /// The bound datagram socket.
    public let fileDescriptor: FileDescriptor

    /// Binds `host:port` (created in the calling thread's network namespace).
    public init(host: String, port: UInt16) throws(SystemError) {
        let fd = try retryingOnInterrupt("socket", arguments: "AF_INET, SOCK_DGRAM") {
            socket(AF_INET, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        }
        fileDescriptor = FileDescriptor(rawValue: fd)
        var size: Int32 = 4 << 20
        // SAFETY: SO_RCVBUF/SO_SNDBUF read one Int32 from `size`.
        _ = unsafe setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &size, socklen_t(MemoryLayout<Int32>.size))
        _ = unsafe setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &size, socklen_t(MemoryLayout<Int32>.size))
        var sa = Self.address(host, port)
        // SAFETY: sockaddr_in begins with the sockaddr header; bind reads `size` bytes of `sa`.
        let rc = unsafe withUnsafePointer(to: &sa) { p in
            unsafe p.withMemoryRebound(to: sockaddr.self, capacity: 1) { unsafe bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard rc == 0 else {
            let e = currentErrno()
            try? fileDescriptor.close()
            throw SystemError(operation: "bind", arguments: "\(host):\(port)", errno: e)
        }
    }

    deinit { try? fileDescriptor.close() }

    static func address(_ host: String, _ port: UInt16) -> sockaddr_in {
        var sa = sockaddr_in()
        sa.sin_family = sa_family_t(AF_INET)
        sa.sin_port = port.bigEndian
        // SAFETY: inet_pton writes one in_addr into sin_addr.
        _ = unsafe inet_pton(AF_INET, host, &sa.sin_addr)
        return sa
    }

    /// A peer: IPv4 address (network order) and port.
    public struct Peer: Sendable, Equatable {
        var address: sockaddr_in
        /// Same port and IPv4 address.
        public static func == (a: Peer, b: Peer) -> Bool {
            a.address.sin_port == b.address.sin_port && a.address.sin_addr.s_addr == b.address.sin_addr.s_addr
        }
    }

    /// Receives one datagram into `buffer`, waiting at most `timeoutMilliseconds`: its length
    /// and sender, or nil on timeout.
    public func receive(into buffer: inout [UInt8], timeoutMilliseconds: Int32) -> (Int, Peer)? {
        var p = pollfd(fd: fileDescriptor.rawValue, events: Int16(POLLIN), revents: 0)
        // SAFETY: poll reads and writes the one pollfd, alive for the call.
        guard unsafe poll(&p, 1, timeoutMilliseconds) > 0 else { return nil }
        var from = sockaddr_in()
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        // SAFETY: recvfrom writes at most buffer.count bytes and one sockaddr_in of `length`.
        let n = unsafe buffer.withUnsafeMutableBytes { b in
            unsafe withUnsafeMutablePointer(to: &from) { f in
                unsafe f.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                    unsafe recvfrom(fileDescriptor.rawValue, b.baseAddress, b.count, 0, $0, &length)
                }
            }
        }
        return n >= 0 ? (n, Peer(address: from)) : nil
    }

    /// Sends `bytes` to `peer`; whether it was sent whole.
    @discardableResult
    public func send(_ bytes: ArraySlice<UInt8>, to peer: Peer) -> Bool {
        var to = peer.address
        // SAFETY: sendto reads the slice's bytes and one sockaddr_in.
        let n = unsafe bytes.withUnsafeBytes { b in
            unsafe withUnsafePointer(to: &to) { t in
                unsafe t.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                    unsafe sendto(fileDescriptor.rawValue, b.baseAddress, b.count, 0, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
                }
            }
        }
        return n == bytes.count
    }
}

/// A UDP echo server on its own thread: every datagram goes back to its sender, unchanged.
/// A datagram whose payload is one of `markers` is first passed to `onMarker` (which may
/// take its time: the echo — the guest's "go" — waits for it). Counts and times what arrives
/// between markers for throughput measurements.
public final class UDPEchoServer: Sendable {
    /// The socket it echoes on.
    public let socket: UDPSocket
    private let markers: Set<String>
    private let onMarker: @Sendable (String, UDPSocket.Peer) -> Void
    private let afterMarker: @Sendable (String, UDPSocket.Peer) -> Void
    private let stopped = Atomic<Bool>(false)
    private let finished = Atomic<Bool>(false)
    private let stats = Mutex<(datagrams: Int, bytes: Int, first: UInt64, last: UInt64)>((0, 0, 0, 0))

    /// Binds `host:port` in the calling thread's namespace and starts echoing.
    /// `afterMarker` runs once the marker's echo is sent (e.g. to start a stream to the guest).
    public init(host: String, port: UInt16, markers: Set<String> = [],
                onMarker: @escaping @Sendable (String, UDPSocket.Peer) -> Void = { _, _ in },
                afterMarker: @escaping @Sendable (String, UDPSocket.Peer) -> Void = { _, _ in }) throws {
        socket = try UDPSocket(host: host, port: port)
        self.markers = markers
        self.onMarker = onMarker
        self.afterMarker = afterMarker
        try HostThread.start(name: "udp-echo") { [self] in loop() }
    }

    deinit { stopped.store(true, ordering: .relaxed) }

    /// Stops the server (within 100 ms).
    public func stop() {
        stopped.store(true, ordering: .relaxed)
        while !finished.load(ordering: .acquiring) { usleep(1000) }
    }

    /// Datagrams and payload bytes received since the last `resetCounts`, and the span from
    /// the first to the last arrival in nanoseconds.
    public var counts: (datagrams: Int, bytes: Int, nanoseconds: UInt64) {
        stats.withLock { ($0.datagrams, $0.bytes, $0.last &- $0.first) }
    }

    /// Starts counting afresh (between two measurements).
    public func resetCounts() { stats.withLock { $0 = (0, 0, 0, 0) } }

    private func loop() {
        var buffer = [UInt8](repeating: 0, count: 65536)
        defer { finished.store(true, ordering: .releasing) }
        while !stopped.load(ordering: .relaxed) {
            guard let (n, peer) = socket.receive(into: &buffer, timeoutMilliseconds: 100) else { continue }
            let now = HostClock.monotonicNanoseconds()
            if n <= 32, let text = String(validating: buffer[0..<n], as: UTF8.self), markers.contains(text) {
                onMarker(text, peer)
                socket.send(buffer[0..<n], to: peer)
                afterMarker(text, peer)
                continue
            } else {
                stats.withLock { s in
                    if s.datagrams == 0 { s.first = now }
                    s.datagrams += 1
                    s.bytes += n
                    s.last = now
                }
            }
            socket.send(buffer[0..<n], to: peer)
        }
    }
}
