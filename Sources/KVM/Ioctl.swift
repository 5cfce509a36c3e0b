internal import CKVM
import VMMSys
#if canImport(Glibc)
import Glibc
#endif

/// The one place this module calls `ioctl(2)`: every request goes through here so that a
/// failure always becomes a `SystemError` named after the ioctl, with its key arguments and
/// errno. EINTR is retried (these are not `KVM_RUN`, whose EINTR is a result).
enum KVMIoctl {
    /// An ioctl whose argument is a pointer to `value`.
    @discardableResult
    static func call<T>(
        _ fd: Int32, _ request: UInt, _ name: String,
        _ arguments: @autoclosure () -> String = "", value: inout T
    ) throws(SystemError) -> Int32 {
        let (result, code) = withUnsafeMutableBytes(of: &value) { buffer in
            retrying { ckvm_ioctl_ptr(fd, request, buffer.baseAddress) }
        }
        guard result >= 0 else { throw SystemError(operation: name, arguments: arguments(), errno: code) }
        return result
    }

    /// An ioctl whose argument is a pointer to a raw buffer (variable-length structures).
    @discardableResult
    static func call(
        _ fd: Int32, _ request: UInt, _ name: String,
        _ arguments: @autoclosure () -> String = "", pointer: UnsafeMutableRawPointer
    ) throws(SystemError) -> Int32 {
        let (result, code) = retrying { ckvm_ioctl_ptr(fd, request, pointer) }
        guard result >= 0 else { throw SystemError(operation: name, arguments: arguments(), errno: code) }
        return result
    }

    /// An ioctl whose argument is an integer (or none: pass 0).
    @discardableResult
    static func call(
        _ fd: Int32, _ request: UInt, _ name: String,
        _ arguments: @autoclosure () -> String = "", integer: UInt
    ) throws(SystemError) -> Int32 {
        let (result, code) = retrying { ckvm_ioctl_int(fd, request, integer) }
        guard result >= 0 else { throw SystemError(operation: name, arguments: arguments(), errno: code) }
        return result
    }

    /// Runs `body` until it does not fail with EINTR; returns its result and the errno.
    @inline(__always)
    private static func retrying(_ body: () -> Int32) -> (Int32, Int32) {
        while true {
            let r = body()
            if r >= 0 { return (r, 0) }
            let code = ckvm_errno()
            if code != EINTR { return (r, code) }
        }
    }
}

/// `0x…` rendering for error arguments.
func hex<T: BinaryInteger>(_ value: T) -> String { "0x" + String(value, radix: 16) }
