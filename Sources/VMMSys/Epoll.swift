internal import CKVM
#if canImport(Glibc)
import Glibc
#endif

/// An epoll instance: the I/O thread's one wait for many eventfds (ioeventfd doorbells, a
/// stop notifier). kvmtool: `ioeventfd.c`'s epoll loop; QEMU: `AioContext`'s fd monitoring.
public final class Epoll: Sendable {
    public let fileDescriptor: Int32

    /// One ready descriptor: the `token` it was added with and the ready event bits.
    public struct Event: Sendable, Equatable {
        public var token: UInt64
        public var events: UInt32
    }

    /// Readiness for input.
    public static let readable: UInt32 = CKVM_EPOLLIN

    public init() throws(SystemError) {
        let fd = epoll_create1(CKVM_EPOLL_CLOEXEC)
        guard fd >= 0 else { throw SystemError(operation: "epoll_create1", arguments: "EPOLL_CLOEXEC", errno: currentErrno()) }
        fileDescriptor = fd
    }

    deinit { close(fileDescriptor) }

    /// Watches `fd` for `events`; `token` comes back with each readiness report.
    public func add(_ fd: Int32, events: UInt32 = Epoll.readable, token: UInt64) throws(SystemError) {
        try control(EPOLL_CTL_ADD, "EPOLL_CTL_ADD", fd, events, token)
    }

    /// Stops watching `fd`.
    public func remove(_ fd: Int32) throws(SystemError) {
        try control(EPOLL_CTL_DEL, "EPOLL_CTL_DEL", fd, 0, 0)
    }

    private func control(_ op: Int32, _ name: String, _ fd: Int32, _ events: UInt32, _ token: UInt64) throws(SystemError) {
        guard ckvm_epoll_ctl(fileDescriptor, op, fd, events, token) == 0 else {
            throw SystemError(operation: "epoll_ctl", arguments: "\(name) fd=\(fd) events=0x\(String(events, radix: 16))", errno: currentErrno())
        }
    }

    /// Waits up to `timeoutMilliseconds` (-1: forever) for at most `maxEvents` (≤ 64) events.
    /// An interrupted wait returns no events.
    public func wait(maxEvents: Int = 64, timeoutMilliseconds: Int32 = -1) throws(SystemError) -> [Event] {
        let max = Swift.max(1, Swift.min(64, maxEvents))
        var tokens = [UInt64](repeating: 0, count: max)
        var events = [UInt32](repeating: 0, count: max)
        let n = tokens.withUnsafeMutableBufferPointer { t in
            events.withUnsafeMutableBufferPointer { e in
                ckvm_epoll_wait(fileDescriptor, t.baseAddress, e.baseAddress, Int32(max), timeoutMilliseconds)
            }
        }
        if n < 0 {
            let code = currentErrno()
            if code == EINTR { return [] }
            throw SystemError(operation: "epoll_wait", arguments: "epfd=\(fileDescriptor)", errno: code)
        }
        return (0..<Int(n)).map { Event(token: tokens[$0], events: events[$0]) }
    }
}
