import SystemPackage
#if canImport(Glibc)
import Glibc
#endif

/// What one non-blocking transfer did. A plain value, so the packet path neither throws (a
/// thrown `Errno` is boxed on the heap) nor allocates.
package enum IOResult: Sendable, Equatable {
    /// This many bytes moved (> 0).
    case transferred(Int)
    /// Nothing to read, or no room to write (EAGAIN).
    case wouldBlock
    /// The peer closed (a read of 0 bytes from a non-empty request).
    case endOfFile
    /// Another error.
    case failed(Errno)
}

/// Reads and writes on non-blocking descriptors (tap queues, chardev sockets and ptys), into and
/// out of buffers the caller owns; EINTR is retried.
package enum NonBlockingIO {
    /// Reads at most `count` bytes into `buffer[offset...]`.
    package static func read(_ fd: FileDescriptor, into buffer: inout [UInt8], offset: Int = 0, count: Int) -> IOResult {
        guard offset >= 0, count > 0, offset <= buffer.count, count <= buffer.count - offset else { return .failed(.invalidArgument) }
        while true {
            // SAFETY: [offset, offset + count) lies inside the buffer (checked above); the
            // kernel writes at most `count` bytes there.
            let n = unsafe buffer.withUnsafeMutableBytes { raw in
                unsafe Glibc.read(fd.rawValue, raw.baseAddress! + offset, count)
            }
            if n > 0 { return .transferred(n) }
            if n == 0 { return .endOfFile }
            let e = currentErrno()
            if e == EINTR { continue }
            if e == EAGAIN || e == EWOULDBLOCK { return .wouldBlock }
            return .failed(Errno(rawValue: e))
        }
    }

    /// Writes as much of `bytes` as the descriptor takes now (one `write`).
    package static func write(_ fd: FileDescriptor, _ bytes: ArraySlice<UInt8>) -> IOResult {
        guard !bytes.isEmpty else { return .transferred(0) }
        while true {
            // SAFETY: the slice's contiguous storage is valid for the call; the kernel reads
            // exactly its count.
            let n = unsafe bytes.withUnsafeBytes { raw in unsafe Glibc.write(fd.rawValue, raw.baseAddress, raw.count) }
            if n >= 0 { return .transferred(n) }
            let e = currentErrno()
            if e == EINTR { continue }
            if e == EAGAIN || e == EWOULDBLOCK { return .wouldBlock }
            return .failed(Errno(rawValue: e))
        }
    }

    /// Sets or clears O_NONBLOCK.
    package static func setNonBlocking(_ fd: FileDescriptor, _ on: Bool = true) throws(SystemError) {
        let flags = try retryingOnInterrupt("fcntl", arguments: "fd=\(fd.rawValue) F_GETFL") { Glibc.fcntl(fd.rawValue, F_GETFL) }
        let new = on ? flags | O_NONBLOCK : flags & ~O_NONBLOCK
        guard new != flags else { return }
        _ = try retryingOnInterrupt("fcntl", arguments: "fd=\(fd.rawValue) F_SETFL") { Glibc.fcntl(fd.rawValue, F_SETFL, new) }
    }

    /// Whether `fd` reports a hang-up now (poll with no wait): a pty master with no slave open.
    package static func hasHungUp(_ fd: FileDescriptor) -> Bool {
        var p = pollfd(fd: fd.rawValue, events: Int16(POLLIN), revents: 0)
        // SAFETY: poll reads and writes the one pollfd, alive for the call.
        let n = unsafe poll(&p, 1, 0)
        return n > 0 && p.revents & Int16(POLLHUP) != 0
    }

    /// Whether `fd` is open (F_GETFD succeeds): for descriptors handed over on the command line.
    package static func isOpen(_ fd: Int32) -> Bool { fd >= 0 && Glibc.fcntl(fd, F_GETFD) >= 0 }
}
