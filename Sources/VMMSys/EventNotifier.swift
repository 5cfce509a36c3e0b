internal import CKVM
import SystemPackage

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
    public let fileDescriptor: FileDescriptor

    /// Creates an eventfd with counter `initialValue`.
    public init(initialValue: UInt32 = 0) throws(SystemError) {
        let fd = try retryingOnInterrupt("eventfd", arguments: "initval=\(initialValue)") {
            eventfd(initialValue, CKVM_EFD_NONBLOCK | CKVM_EFD_CLOEXEC)
        }
        fileDescriptor = FileDescriptor(rawValue: fd)
    }

    deinit { try? fileDescriptor.close() }

    /// Adds `value` to the counter (wakes any waiter). QEMU: event_notifier_set().
    ///
    /// Adding would overflow the counter past 0xffff_ffff_ffff_fffe only after ~2^64 signals
    /// without a read; in that case the kernel reports EAGAIN and the signal is already
    /// pending, so it is not an error here.
    public func set(_ value: UInt64 = 1) {
        var v = value
        // SAFETY: the buffer is the 8 bytes of `v`, alive for the call; eventfd reads exactly 8.
        _ = unsafe withUnsafeBytes(of: &v) { try? unsafe fileDescriptor.write($0) }
    }

    /// Reads and clears the counter; returns the value it held (0 if it was not signalled).
    /// QEMU: event_notifier_test_and_clear() returns the value != 0.
    @discardableResult
    public func testAndClear() -> UInt64 {
        var v: UInt64 = 0
        // SAFETY: the buffer is the 8 bytes of `v`, alive for the call; eventfd writes exactly 8.
        let n = unsafe withUnsafeMutableBytes(of: &v) { try? unsafe fileDescriptor.read(into: $0) }
        return n == 8 ? v : 0
    }

    /// `EventNotifier(fd: N)`, for logs and the monitor's ioeventfd listing.
    public var description: String { "EventNotifier(fd: \(fileDescriptor.rawValue))" }
}
