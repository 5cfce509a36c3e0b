import Synchronization
import SystemPackage
import VMMSys

/// Where a UART's transmitted bytes go (QEMU's chardev). Called on the vCPU thread that wrote
/// the transmit register, in order, with the device's lock held: a backend must not call back
/// into the UART. QEMU: Chardev (`qemu_chr_fe_write`).
public protocol SerialBackend: Sendable {
    /// Takes the bytes the guest transmitted, in order; must not block for long nor call back
    /// into the device. QEMU: qemu_chr_fe_write_all().
    func write(_ bytes: [UInt8])
}

/// The host's standard output, unbuffered (`-serial stdio`). QEMU: chardev "stdio".
public struct StdoutSerialBackend: SerialBackend {
    /// A backend on descriptor 1.
    public init() {}
    /// Writes all of `bytes` to standard output (short writes completed, EINTR retried); an
    /// error (a closed terminal) drops them, so the guest never stops for it.
    public func write(_ bytes: [UInt8]) { writeFully(FileDescriptor.standardOutput, bytes) }
}

/// Drops everything (`-serial none`, or `-nodefaults` without `-serial`). QEMU: chardev "null".
public struct NullSerialBackend: SerialBackend {
    /// A backend that discards.
    public init() {}
    /// Discards `bytes`.
    public func write(_ bytes: [UInt8]) {}
}

/// Appends to a file, created if missing and truncated (`-serial file:PATH`). The descriptor
/// is closed when the backend is released. QEMU: chardev "file".
public final class FileSerialBackend: SerialBackend {
    /// The file written to.
    public let path: String
    private let fd: FileDescriptor

    /// Creates or truncates `path` (mode 0644 before the umask), write-only and close-on-exec.
    /// - Throws: `SystemError` naming `open` and the path.
    public init(path: String) throws(SystemError) {
        fd = try systemCall("open", arguments: path) {
            try FileDescriptor.open(FilePath(path), .writeOnly, options: [.create, .truncate, .closeOnExec],
                                    permissions: [.ownerReadWrite, .groupRead, .otherRead])
        }
        self.path = path
    }

    deinit { try? fd.close() }

    /// Writes all of `bytes` to the file; an error drops them (the guest never stops for it).
    public func write(_ bytes: [UInt8]) { writeFully(fd, bytes) }
}

/// Keeps every byte in memory; for tests and for the monitor. QEMU: chardev "ringbuf" (unbounded).
public final class CapturingSerialBackend: SerialBackend {
    private let storage = Mutex<[UInt8]>([])

    /// An empty capture.
    public init() {}

    /// Appends `bytes` to the capture.
    public func write(_ bytes: [UInt8]) { storage.withLock { $0.append(contentsOf: bytes) } }

    /// Everything written so far.
    public var bytes: [UInt8] { storage.withLock { $0 } }

    /// Everything written so far, decoded as UTF-8 (invalid sequences repaired).
    public var text: String { String(decoding: bytes, as: UTF8.self) }

    /// Returns and forgets everything written so far.
    public func take() -> [UInt8] { storage.withLock { b in defer { b = [] }; return b } }
}
