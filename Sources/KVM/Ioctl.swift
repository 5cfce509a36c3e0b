internal import CKVM
import SystemPackage
import VMMSys

/// The one place this module calls `ioctl(2)`: every request goes through here so that a
/// failure always becomes a `SystemError` named after the ioctl, with its key arguments and
/// errno. EINTR is retried (these are not `KVM_RUN`, whose EINTR is a result).
enum KVMIoctl {
    /// An ioctl whose argument is a pointer to `value`.
    @discardableResult
    static func call<T>(
        _ fd: FileDescriptor, _ request: UInt, _ name: String,
        _ arguments: @autoclosure () -> String = "", value: inout T
    ) throws(SystemError) -> Int32 {
        // SAFETY: `value` is a kernel ABI struct (or integer) of the type `request` reads or
        // writes, and its storage outlives the call.
        try unsafe withUnsafeMutableBytes(of: &value) { buffer throws(SystemError) in
            try unsafe call(fd, request, name, arguments(), pointer: buffer.baseAddress!)
        }
    }

    /// An ioctl whose argument is a pointer to a raw buffer (variable-length structures).
    /// The caller guarantees that `pointer` addresses what `request` reads or writes.
    @discardableResult
    static func call(
        _ fd: FileDescriptor, _ request: UInt, _ name: String,
        _ arguments: @autoclosure () -> String = "", pointer: UnsafeMutableRawPointer
    ) throws(SystemError) -> Int32 {
        // SAFETY: the caller's contract (above).
        try retryingOnInterrupt(name, arguments: arguments()) { unsafe ckvm_ioctl_ptr(fd.rawValue, request, pointer) }
    }

    /// An ioctl whose argument is an integer (or none: pass 0).
    @discardableResult
    static func call(
        _ fd: FileDescriptor, _ request: UInt, _ name: String,
        _ arguments: @autoclosure () -> String = "", integer: UInt
    ) throws(SystemError) -> Int32 {
        try retryingOnInterrupt(name, arguments: arguments()) { ckvm_ioctl_int(fd.rawValue, request, integer) }
    }
}

/// `0x…` rendering for error arguments.
