internal import CKVM
#if canImport(Glibc)
import Glibc
#endif

/// Where a stream socket listens or connects: a unix path or a TCP host and port.
/// QEMU: SocketAddress (`unix:PATH`, `tcp:HOST:PORT`).
public enum SocketAddress: Sendable, Equatable, CustomStringConvertible {
    case unix(String)
    case tcp(host: String, port: UInt16)

    public var description: String {
        switch self {
        case .unix(let p): "unix:\(p)"
        case .tcp(let h, let p): "tcp:\(h):\(p)"
        }
    }
}

/// A listening stream socket (close-on-exec), closed with the object. A unix path is replaced
/// if a stale socket file is there, as QEMU's unix_listen_saddr() does.
public final class SocketListener: Sendable {
    public let fileDescriptor: Int32
    public let address: SocketAddress

    public init(_ address: SocketAddress, backlog: Int32 = 1) throws(SystemError) {
        self.address = address
        switch address {
        case .unix(let path):
            let fd = try retryingOnInterrupt("socket", arguments: "AF_UNIX") { socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0) }
            var sa = try Self.unixAddress(path)
            unlink(path)
            let rc = withUnsafePointer(to: &sa) { p in
                p.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
            }
            guard rc == 0 else {
                let e = currentErrno()
                close(fd)
                throw SystemError(operation: "bind", arguments: address.description, errno: e)
            }
            fileDescriptor = fd
        case .tcp(let host, let port):
            let fd = try retryingOnInterrupt("socket", arguments: "AF_INET") { socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0) }
            var one: Int32 = 1
            setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
            var sa = sockaddr_in()
            sa.sin_family = sa_family_t(AF_INET)
            sa.sin_port = port.bigEndian
            guard inet_pton(AF_INET, host == "localhost" ? "127.0.0.1" : host, &sa.sin_addr) == 1 else {
                close(fd)
                throw SystemError(operation: "inet_pton", arguments: host, errno: EINVAL)
            }
            let rc = withUnsafePointer(to: &sa) { p in
                p.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
            }
            guard rc == 0 else {
                let e = currentErrno()
                close(fd)
                throw SystemError(operation: "bind", arguments: address.description, errno: e)
            }
            fileDescriptor = fd
        }
        guard listen(fileDescriptor, backlog) == 0 else {
            let e = currentErrno()
            close(fileDescriptor)
            throw SystemError(operation: "listen", arguments: address.description, errno: e)
        }
    }

    deinit {
        close(fileDescriptor)
        if case .unix(let path) = address { unlink(path) }
    }

    /// Waits for the next client.
    public func accept() throws(SystemError) -> SocketConnection {
        let fd = try retryingOnInterrupt("accept4", arguments: address.description) {
            ckvm_accept4(fileDescriptor, Int32(SOCK_CLOEXEC.rawValue))
        }
        return SocketConnection(fileDescriptor: fd)
    }

    static func unixAddress(_ path: String) throws(SystemError) -> sockaddr_un {
        var sa = sockaddr_un()
        sa.sun_family = sa_family_t(AF_UNIX)
        let bytes = Array(path.utf8)
        guard bytes.count < MemoryLayout.size(ofValue: sa.sun_path) else {
            throw SystemError(operation: "bind", arguments: "unix:\(path) (path too long)", errno: ENAMETOOLONG)
        }
        withUnsafeMutableBytes(of: &sa.sun_path) { raw in
            for (i, b) in bytes.enumerated() { raw[i] = b }
        }
        return sa
    }
}

/// One connected stream socket, closed with the object (or by `shutdown`).
public final class SocketConnection: Sendable {
    public let fileDescriptor: Int32

    public init(fileDescriptor: Int32) { self.fileDescriptor = fileDescriptor }

    /// Connects to a listening socket (a client chardev).
    public convenience init(connectingTo address: SocketAddress) throws(SystemError) {
        switch address {
        case .unix(let path):
            let fd = try retryingOnInterrupt("socket", arguments: "AF_UNIX") { socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0) }
            var sa = try SocketListener.unixAddress(path)
            let rc = withUnsafePointer(to: &sa) { p in
                p.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
            }
            guard rc == 0 else {
                let e = currentErrno()
                close(fd)
                throw SystemError(operation: "connect", arguments: address.description, errno: e)
            }
            self.init(fileDescriptor: fd)
        case .tcp(let host, let port):
            let fd = try retryingOnInterrupt("socket", arguments: "AF_INET") { socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0) }
            var sa = sockaddr_in()
            sa.sin_family = sa_family_t(AF_INET)
            sa.sin_port = port.bigEndian
            guard inet_pton(AF_INET, host == "localhost" ? "127.0.0.1" : host, &sa.sin_addr) == 1 else {
                close(fd)
                throw SystemError(operation: "inet_pton", arguments: host, errno: EINVAL)
            }
            let rc = withUnsafePointer(to: &sa) { p in
                p.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
            }
            guard rc == 0 else {
                let e = currentErrno()
                close(fd)
                throw SystemError(operation: "connect", arguments: address.description, errno: e)
            }
            self.init(fileDescriptor: fd)
        }
    }

    deinit { close(fileDescriptor) }

    /// Reads what is available, up to `maxBytes`; an empty result means the peer closed.
    public func read(maxBytes: Int = 4096) throws(SystemError) -> [UInt8] {
        var buffer = [UInt8](repeating: 0, count: max(1, maxBytes))
        let n = try retryingOnInterrupt("read", arguments: "socket fd=\(fileDescriptor)") {
            buffer.withUnsafeMutableBytes { Glibc.read(fileDescriptor, $0.baseAddress!, $0.count) }
        }
        return Array(buffer[0..<n])
    }

    /// Writes everything; false when the peer is gone.
    @discardableResult
    public func write(_ bytes: [UInt8]) -> Bool { writeFully(fileDescriptor, bytes) }

    /// Ends both directions (wakes a reader blocked in `read`).
    public func shutdown() { _ = Glibc.shutdown(fileDescriptor, Int32(SHUT_RDWR)) }
}
