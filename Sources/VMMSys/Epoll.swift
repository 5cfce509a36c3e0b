internal import CKVM
import SystemPackage
#if canImport(Glibc)
import Glibc
#endif

/// An epoll instance: the I/O thread's one wait for many eventfds (ioeventfd doorbells, a
/// stop notifier). kvmtool: `ioeventfd.c`'s epoll loop; QEMU: `AioContext`'s fd monitoring.
package final class Epoll: Sendable {
    package let fileDescriptor: FileDescriptor

    /// One ready descriptor: the `token` it was added with and the ready event bits.
    package struct Event: Sendable, Equatable {
        package var token: UInt64
        package var events: UInt32
    }

    /// Readiness for input.
    package static let readable: UInt32 = CKVM_EPOLLIN

    package init() throws(SystemError) {
        let fd = try retryingOnInterrupt("epoll_create1", arguments: "EPOLL_CLOEXEC") { epoll_create1(CKVM_EPOLL_CLOEXEC) }
        fileDescriptor = FileDescriptor(rawValue: fd)
    }

    deinit { try? fileDescriptor.close() }

    /// Watches `fd` for `events`; `token` comes back with each readiness report.
    package func add(_ fd: FileDescriptor, events: UInt32 = Epoll.readable, token: UInt64) throws(SystemError) {
        try control(EPOLL_CTL_ADD, "EPOLL_CTL_ADD", fd, events, token)
    }

    /// Stops watching `fd`.
    package func remove(_ fd: FileDescriptor) throws(SystemError) {
        try control(EPOLL_CTL_DEL, "EPOLL_CTL_DEL", fd, 0, 0)
    }

    private func control(_ op: Int32, _ name: String, _ fd: FileDescriptor, _ events: UInt32, _ token: UInt64) throws(SystemError) {
        _ = try retryingOnInterrupt("epoll_ctl", arguments: "\(name) fd=\(fd.rawValue) events=0x\(String(events, radix: 16))") {
            ckvm_epoll_ctl(fileDescriptor.rawValue, op, fd.rawValue, events, token)
        }
    }

    /// Waits up to `timeoutMilliseconds` (-1: forever) for at most `maxEvents` (≤ 64) events.
    /// An interrupted wait returns no events (the caller's loop recomputes its timeout), so
    /// EINTR is a result here, not retried.
    package func wait(maxEvents: Int = 64, timeoutMilliseconds: Int32 = -1) throws(SystemError) -> [Event] {
        let max = Swift.max(1, Swift.min(64, maxEvents))
        var tokens = [UInt64](repeating: 0, count: max)
        var events = [UInt32](repeating: 0, count: max)
        // SAFETY: both buffers hold `max` (≤ 64) elements and the shim writes at most `max`.
        let n = unsafe tokens.withUnsafeMutableBufferPointer { t in
            unsafe events.withUnsafeMutableBufferPointer { e in
                unsafe ckvm_epoll_wait(fileDescriptor.rawValue, t.baseAddress, e.baseAddress, Int32(max), timeoutMilliseconds)
            }
        }
        if n < 0 {
            let code = currentErrno()
            if code == EINTR { return [] }
            throw SystemError(operation: "epoll_wait", arguments: "epfd=\(fileDescriptor.rawValue)", errno: code)
        }
        return (0..<Int(n)).map { Event(token: tokens[$0], events: events[$0]) }
    }
}
