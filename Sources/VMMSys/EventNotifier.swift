internal import CKVM
#if canImport(Glibc)
import Glibc
#endif

/// An eventfd: a 64-bit counter in the kernel that one side adds to and the other reads and
/// clears. The currency of exitless I/O: KVM signals one for an ioeventfd match, and the VMM
/// signals one to inject an interrupt through irqfd.
///
/// The descriptor is non-blocking and close-on-exec, and is closed when the notifier is
/// released. Instances are shared across threads (the vCPU thread registers it, the I/O
/// thread waits on it), and identity (`===`) is what tells two notifiers apart.
/// QEMU: EventNotifier (util/event_notifier-posix.c).
public final class EventNotifier: Sendable, CustomStringConvertible {
    /// The eventfd descriptor.
    public let fileDescriptor: Int32

    /// Creates an eventfd with counter `initialValue`.
    public init(initialValue: UInt32 = 0) throws(SystemError) {
        let fd = eventfd(initialValue, CKVM_EFD_NONBLOCK | CKVM_EFD_CLOEXEC)
        guard fd >= 0 else {
            throw SystemError(operation: "eventfd", arguments: "initval=\(initialValue)", errno: currentErrno())
        }
        fileDescriptor = fd
    }

    deinit { close(fileDescriptor) }

    /// Adds `value` to the counter (wakes any waiter). QEMU: event_notifier_set().
    ///
    /// Adding would overflow the counter past 0xffff_ffff_ffff_fffe only after ~2^64 signals
    /// without a read; in that case the kernel reports EAGAIN and the signal is already
    /// pending, so it is not an error here.
    public func set(_ value: UInt64 = 1) {
        var v = value
        while true {
            let n = withUnsafeBytes(of: &v) { write(fileDescriptor, $0.baseAddress, 8) }
            if n == 8 { return }
            if n < 0 && currentErrno() == EINTR { continue }
            return
        }
    }

    /// Reads and clears the counter; returns the value it held (0 if it was not signalled).
    /// QEMU: event_notifier_test_and_clear() returns the value != 0.
    @discardableResult
    public func testAndClear() -> UInt64 {
        var v: UInt64 = 0
        while true {
            let n = withUnsafeMutableBytes(of: &v) { read(fileDescriptor, $0.baseAddress, 8) }
            if n == 8 { return v }
            if n < 0 && currentErrno() == EINTR { continue }
            return 0
        }
    }

    public var description: String { "EventNotifier(fd: \(fileDescriptor))" }
}
