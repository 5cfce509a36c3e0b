internal import CKVM
#if canImport(Glibc)
import Glibc
#endif

/// A failed host call: which operation, with which arguments, and the errno it returned.
///
/// Every error from the host layers names its operation so that a user can see which ioctl
/// or syscall failed and why (`KVM_IOEVENTFD(addr=0xf4 len=1 flags=PIO) failed: EEXIST (17)`).
public struct SystemError: Error, CustomStringConvertible, Sendable, Equatable {
    /// The operation, e.g. `"KVM_CREATE_VM"` or `"eventfd"`.
    public var operation: String
    /// Key arguments of the call, rendered for people.
    public var arguments: String
    /// The errno value.
    public var errno: Int32

    public init(operation: String, arguments: String = "", errno: Int32) {
        self.operation = operation
        self.arguments = arguments
        self.errno = errno
    }

    /// The symbolic errno name where known (`EEXIST`), otherwise the number.
    public var errnoName: String { SystemError.name(of: errno) }

    public var description: String {
        let call = arguments.isEmpty ? operation : "\(operation)(\(arguments))"
        return "\(call) failed: \(errnoName) (\(errno)): \(String(cString: strerror(errno)))"
    }

    static func name(of code: Int32) -> String {
        switch code {
        case EPERM: "EPERM"
        case ENOENT: "ENOENT"
        case EINTR: "EINTR"
        case EIO: "EIO"
        case EBADF: "EBADF"
        case EAGAIN: "EAGAIN"
        case ENOMEM: "ENOMEM"
        case EACCES: "EACCES"
        case EFAULT: "EFAULT"
        case EBUSY: "EBUSY"
        case EEXIST: "EEXIST"
        case ENODEV: "ENODEV"
        case EINVAL: "EINVAL"
        case ENFILE: "ENFILE"
        case EMFILE: "EMFILE"
        case ENOSPC: "ENOSPC"
        case E2BIG: "E2BIG"
        case ENXIO: "ENXIO"
        case ENOTTY: "ENOTTY"
        case ENOSYS: "ENOSYS"
        case EOPNOTSUPP: "EOPNOTSUPP"
        default: "errno \(code)"
        }
    }
}

/// Runs a host call that returns -1 and sets errno on failure, retrying on EINTR.
///
/// Not for `KVM_RUN`, whose EINTR is a result (the vCPU was kicked), not a reason to retry.
public func retryingOnInterrupt<T: BinaryInteger>(
    _ operation: @autoclosure () -> String,
    arguments: @autoclosure () -> String = "",
    _ body: () -> T
) throws(SystemError) -> T {
    while true {
        let result = body()
        if result != -1 { return result }
        let code = currentErrno()
        if code == Glibc.EINTR { continue }
        throw SystemError(operation: operation(), arguments: arguments(), errno: code)
    }
}

/// The calling thread's errno.
public func currentErrno() -> Int32 {
    #if canImport(Glibc)
    return Glibc.errno
    #else
    return errno
    #endif
}
