internal import CKVM
import SystemPackage
#if canImport(Glibc)
import Glibc
#endif

/// Where a stream socket listens or connects: a unix path or a TCP host and port.
/// QEMU: SocketAddress (`unix:PATH`, `tcp:HOST:PORT`).
public enum SocketAddress: Sendable, Equatable, CustomStringConvertible {
    /// A unix-domain socket at this path (`unix:PATH`).
    case unix(String)
    /// An IPv4 TCP socket (`tcp:HOST:PORT`); `localhost` means 127.0.0.1.
    case tcp(host: String, port: UInt16)

    /// QEMU's spelling: `unix:PATH` or `tcp:HOST:PORT`.
    public var description: String {
        switch self {
        case .unix(let p): "unix:\(p)"
        case .tcp(let h, let p): "tcp:\(h):\(p)"
        }
    }

    /// A new close-on-exec stream socket of this address's family.
    func openSocket() throws(SystemError) -> FileDescriptor {
        let family: Int32
        switch self {
        case .unix: family = AF_UNIX
        case .tcp: family = AF_INET
        }
        let fd = try retryingOnInterrupt("socket", arguments: family == AF_UNIX ? "AF_UNIX" : "AF_INET") {
            socket(family, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        }
        return FileDescriptor(rawValue: fd)
    }

    /// Calls `body` (bind or connect) with this address as a `sockaddr`; throws what it fails
    /// with, as `operation`.
    func withSockaddr(_ operation: String, _ body: (UnsafePointer<sockaddr>, socklen_t) -> Int32) throws(SystemError) {
        let rc: Int32
        switch self {
        case .unix(let path):
            var sa = sockaddr_un()
            sa.sun_family = sa_family_t(AF_UNIX)
            let bytes = Array(path.utf8)
            guard bytes.count < MemoryLayout.size(ofValue: sa.sun_path) else {
                throw SystemError(operation: operation, arguments: "\(self) (path too long)", code: .fileNameTooLong)
            }
            // SAFETY: the path's bytes and its NUL fit in sun_path (checked just above).
            unsafe withUnsafeMutableBytes(of: &sa.sun_path) { raw in
                for (i, b) in bytes.enumerated() { unsafe raw[i] = b }
            }
            // SAFETY: sockaddr_un begins with the sockaddr header; the kernel reads `size` bytes of `sa`.
            rc = unsafe withUnsafePointer(to: &sa) { p in
                unsafe p.withMemoryRebound(to: sockaddr.self, capacity: 1) { unsafe body($0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
            }
        case .tcp(let host, let port):
            var sa = sockaddr_in()
            sa.sin_family = sa_family_t(AF_INET)
            sa.sin_port = port.bigEndian
            // SAFETY: inet_pton writes one in_addr into sin_addr.
            guard unsafe inet_pton(AF_INET, host == "localhost" ? "127.0.0.1" : host, &sa.sin_addr) == 1 else {
                throw SystemError(operation: "inet_pton", arguments: host, code: .invalidArgument)
            }
            // SAFETY: sockaddr_in begins with the sockaddr header; the kernel reads `size` bytes of `sa`.
            rc = unsafe withUnsafePointer(to: &sa) { p in
                unsafe p.withMemoryRebound(to: sockaddr.self, capacity: 1) { unsafe body($0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
            }
        }
        guard rc == 0 else { throw SystemError(operation: operation, arguments: description, errno: currentErrno()) }
    }
}

/// A listening stream socket (close-on-exec), closed with the object. A unix path is replaced
/// if a stale socket file is there, as QEMU's unix_listen_saddr() does.
public final class SocketListener: Sendable {
    /// The listening descriptor.
    public let fileDescriptor: FileDescriptor
    /// Where it listens.
    public let address: SocketAddress

    /// Binds and listens on `address` (a stale unix socket file there is removed first; TCP
    /// sets SO_REUSEADDR). QEMU: socket_listen().
    /// - Parameters:
    ///   - address: where to listen.
    ///   - backlog: pending connections the kernel queues (one client at a time is served).
    /// - Throws: `SystemError` naming socket, bind or listen and the address.
    public init(_ address: SocketAddress, backlog: Int32 = 1) throws(SystemError) {
        self.address = address
        let fd = try address.openSocket()
        do throws(SystemError) {
            switch address {
            // SAFETY (unlink): the String-to-C-string conversion is valid for the call.
            case .unix(let path): unsafe unlink(path)
            case .tcp:
                var one: Int32 = 1
                // SAFETY: SO_REUSEADDR reads one Int32 from `one`.
                _ = unsafe setsockopt(fd.rawValue, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
            }
            // SAFETY: bind reads `length` bytes of the address withSockaddr built.
            try unsafe address.withSockaddr("bind") { unsafe bind(fd.rawValue, $0, $1) }
            _ = try retryingOnInterrupt("listen", arguments: address.description) { listen(fd.rawValue, backlog) }
        } catch {
            try? fd.close()
            throw error
        }
        fileDescriptor = fd
    }

    deinit {
        try? fileDescriptor.close()
        // SAFETY: the String-to-C-string conversion is valid for the call.
        if case .unix(let path) = address { unsafe unlink(path) }
    }

    /// Waits for the next client.
    public func accept() throws(SystemError) -> SocketConnection {
        let fd = try retryingOnInterrupt("accept4", arguments: address.description) {
            ckvm_accept4(fileDescriptor.rawValue, Int32(SOCK_CLOEXEC.rawValue))
        }
        return SocketConnection(fileDescriptor: FileDescriptor(rawValue: fd))
    }
}

/// One connected stream socket, closed with the object (or by `shutdown`): a chardev's or a
/// monitor's client.
public final class SocketConnection: Sendable {
    /// The connected descriptor.
    public let fileDescriptor: FileDescriptor

    /// Takes ownership of a connected socket.
    public init(fileDescriptor: FileDescriptor) { self.fileDescriptor = fileDescriptor }

    /// Connects to a listening socket (a client chardev). QEMU: socket_connect().
    public convenience init(connectingTo address: SocketAddress) throws(SystemError) {
        let fd = try address.openSocket()
        do throws(SystemError) {
            // SAFETY: connect reads `length` bytes of the address withSockaddr built.
            try unsafe address.withSockaddr("connect") { unsafe connect(fd.rawValue, $0, $1) }
        } catch {
            try? fd.close()
            throw error
        }
        self.init(fileDescriptor: fd)
    }

    deinit { try? fileDescriptor.close() }

    /// Reads what is available, up to `maxBytes`; an empty result means the peer closed.
    public func read(maxBytes: Int = 4096) throws(SystemError) -> [UInt8] {
        var buffer = [UInt8](repeating: 0, count: max(1, maxBytes))
        let n = try systemCall("read", arguments: "socket fd=\(fileDescriptor.rawValue)") {
            // SAFETY: the kernel writes at most buffer.count bytes into the buffer.
            try unsafe buffer.withUnsafeMutableBytes { try unsafe fileDescriptor.read(into: $0) }
        }
        return Array(buffer[0..<n])
    }

    /// Writes everything; false when the peer is gone.
    @discardableResult
    public func write(_ bytes: [UInt8]) -> Bool { writeFully(fileDescriptor, bytes) }

    /// Ends both directions (wakes a reader blocked in `read`).
    public func shutdown() { _ = Glibc.shutdown(fileDescriptor.rawValue, Int32(SHUT_RDWR)) }
}
