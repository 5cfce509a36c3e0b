import Synchronization
import VMMSys
#if canImport(Glibc)
import Glibc
#endif

/// Where a UART's transmitted bytes go (QEMU's chardev). Called on the vCPU thread that wrote
/// the transmit register, in order, with the device's lock held: a backend must not call back
/// into the UART. QEMU: Chardev (`qemu_chr_fe_write`).
public protocol SerialBackend: Sendable {
    func write(_ bytes: [UInt8])
}

private func writeAll(_ fd: Int32, _ bytes: [UInt8]) { writeFully(fd, bytes) }

/// The host's standard output, unbuffered (`-serial stdio`). QEMU: chardev "stdio".
public struct StdoutSerialBackend: SerialBackend {
    public init() {}
    public func write(_ bytes: [UInt8]) { writeAll(STDOUT_FILENO, bytes) }
}

/// Drops everything (`-serial none`, or `-nodefaults` without `-serial`). QEMU: chardev "null".
public struct NullSerialBackend: SerialBackend {
    public init() {}
    public func write(_ bytes: [UInt8]) {}
}

/// Appends to a file, created if missing and truncated (`-serial file:PATH`). The descriptor
/// is closed when the backend is released. QEMU: chardev "file".
public final class FileSerialBackend: SerialBackend {
    public let path: String
    private let fd: Int32

    public init(path: String) throws(SystemError) {
        let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        guard fd >= 0 else {
            throw SystemError(operation: "open", arguments: path, errno: currentErrno())
        }
        self.path = path
        self.fd = fd
    }

    deinit { close(fd) }

    public func write(_ bytes: [UInt8]) { writeAll(fd, bytes) }
}

/// Keeps every byte in memory; for tests and for the monitor. QEMU: chardev "ringbuf" (unbounded).
public final class CapturingSerialBackend: SerialBackend {
    private let storage = Mutex<[UInt8]>([])

    public init() {}

    public func write(_ bytes: [UInt8]) { storage.withLock { $0.append(contentsOf: bytes) } }

    /// Everything written so far.
    public var bytes: [UInt8] { storage.withLock { $0 } }

    /// Everything written so far, decoded as UTF-8 (invalid sequences repaired).
    public var text: String { String(decoding: bytes, as: UTF8.self) }

    /// Returns and forgets everything written so far.
    public func take() -> [UInt8] { storage.withLock { b in defer { b = [] }; return b } }
}
