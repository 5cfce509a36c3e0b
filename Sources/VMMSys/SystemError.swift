internal import CKVM
import SystemPackage
#if canImport(Glibc)
import Glibc
#endif

/// A failed host call: which operation, with which arguments, and the `Errno` it returned.
///
/// swift-system's `Errno` says why; this adds what was called, so that a user can see which
/// ioctl or syscall failed and why (`KVM_IOEVENTFD(addr=0xf4 len=1 flags=PIO) failed: EEXIST
/// (17): File exists`). QEMU: error_setg_errno() (an Error with the errno's text appended).
public struct SystemError: Error, CustomStringConvertible, Sendable, Equatable {
    /// The operation, e.g. `"KVM_CREATE_VM"` or `"eventfd"`.
    public var operation: String
    /// Key arguments of the call, rendered for people.
    public var arguments: String
    /// Why it failed.
    public var code: Errno

    /// An error for `operation` called with `arguments` that failed with `code`.
    public init(operation: String, arguments: String = "", code: Errno) {
        self.operation = operation
        self.arguments = arguments
        self.code = code
    }

    /// From a raw errno value (what C calls and `pthread_*` return).
    public init(operation: String, arguments: String = "", errno: Int32) {
        self.init(operation: operation, arguments: arguments, code: Errno(rawValue: errno))
    }

    /// The raw errno value.
    public var errno: Int32 { code.rawValue }

    /// The symbolic errno name (`EEXIST`) from the C library, or `errno N` where it has none.
    public var errnoName: String { code.name }

    /// `OPERATION(ARGUMENTS) failed: ENAME (N): strerror text`, e.g. `KVM_CREATE_VM failed: EACCES
    /// (13): Permission denied`.
    public var description: String {
        let call = arguments.isEmpty ? operation : "\(operation)(\(arguments))"
        return "\(call) failed: \(errnoName) (\(errno)): \(code)"
    }
}

extension Errno {
    /// The symbolic name (`EEXIST`) from glibc's `strerrorname_np()`, or `errno N` for a value
    /// it does not know.
    public var name: String {
        // SAFETY: strerrorname_np returns NULL or a pointer to a static NUL-terminated string.
        guard let p = unsafe strerrorname_np(rawValue) else { return "errno \(rawValue)" }
        return unsafe String(cString: p)
    }
}

/// Runs a call of swift-system (which throws `Errno`) and names the operation in the error.
/// swift-system's calls already retry on EINTR unless told not to.
package func systemCall<R>(
    _ operation: @autoclosure () -> String,
    arguments: @autoclosure () -> String = "",
    _ body: () throws -> R
) throws(SystemError) -> R {
    do {
        return try body()
    } catch let code as Errno {
        throw SystemError(operation: operation(), arguments: arguments(), code: code)
    } catch {
        // swift-system's file operations throw nothing but Errno.
        throw SystemError(operation: operation(), arguments: "\(arguments()) (\(error))", code: .ioError)
    }
}

/// Runs a host call that swift-system does not wrap (an ioctl, a socket call), which returns -1
/// and sets errno on failure, retrying on EINTR as swift-system does for its own calls.
///
/// Not for `KVM_RUN`, whose EINTR is a result (the vCPU was kicked), not a reason to retry;
/// nor for `epoll_wait`, whose interrupted wait returns to its caller's loop.
package func retryingOnInterrupt<T: BinaryInteger>(
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
package func currentErrno() -> Int32 {
    #if canImport(Glibc)
    return Glibc.errno
    #else
    return errno
    #endif
}
