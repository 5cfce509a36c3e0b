internal import CKVM
import SystemPackage
#if canImport(Glibc)
import Glibc
#endif

/// Storage for the results of `Epoll.wait(into:timeoutMilliseconds:)`, allocated once and
/// reused on every wake-up, so an I/O thread's loop allocates nothing per event.
package struct EpollEventBuffer: Sendable {
    /// Room for this many events per wait (at most 64, the shim's limit).
    package let capacity: Int
    var tokens: [UInt64]
    var bits: [UInt32]
    /// Events filled by the last wait.
    package private(set) var count = 0

    package init(capacity: Int = 64) {
        self.capacity = Swift.max(1, Swift.min(64, capacity))
        tokens = [UInt64](repeating: 0, count: self.capacity)
        bits = [UInt32](repeating: 0, count: self.capacity)
    }

    /// The token of event `i` (< `count`).
    package func token(_ i: Int) -> UInt64 { tokens[i] }
    /// The ready bits of event `i` (< `count`).
    package func events(_ i: Int) -> UInt32 { bits[i] }

    mutating func setCount(_ n: Int) { count = n }
}

extension Epoll {
    /// Waits as `wait(maxEvents:timeoutMilliseconds:)` does, writing the events into `buffer`
    /// instead of returning new arrays. An interrupted wait reports no events.
    package func wait(into buffer: inout EpollEventBuffer, timeoutMilliseconds: Int32 = -1) throws(SystemError) {
        let max = Int32(buffer.capacity)
        // SAFETY: both arrays hold `capacity` (≤ 64) elements and the shim writes at most `max`
        // entries into each; the pointers live only for the call.
        let n = unsafe buffer.tokens.withUnsafeMutableBufferPointer { t in
            unsafe buffer.bits.withUnsafeMutableBufferPointer { e in
                unsafe ckvm_epoll_wait(fileDescriptor.rawValue, t.baseAddress, e.baseAddress, max, timeoutMilliseconds)
            }
        }
        if n < 0 {
            let code = currentErrno()
            buffer.setCount(0)
            if code == EINTR { return }
            throw SystemError(operation: "epoll_wait", arguments: "epfd=\(fileDescriptor.rawValue)", errno: code)
        }
        buffer.setCount(Int(n))
    }

    /// Changes the events watched on `fd` (which must be added). QEMU: aio_set_fd_handler()'s
    /// EPOLL_CTL_MOD in util/fdmon-epoll.c.
    package func modify(_ fd: FileDescriptor, events: UInt32, token: UInt64) throws(SystemError) {
        _ = try retryingOnInterrupt("epoll_ctl", arguments: "EPOLL_CTL_MOD fd=\(fd.rawValue) events=0x\(String(events, radix: 16))") {
            ckvm_epoll_ctl(fileDescriptor.rawValue, EPOLL_CTL_MOD, fd.rawValue, events, token)
        }
    }
}
