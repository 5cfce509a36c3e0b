internal import CKVM
#if canImport(Glibc)
import Glibc
#endif

/// A disk image opened for positioned I/O: every read and write names its offset (`pread`/
/// `pwrite`), so requests never share a file position, and short transfers are completed.
/// Zeroing uses `fallocate` as QEMU's raw driver does (`handle_aiocb_write_zeroes()`): punch a
/// hole (keeping the size), and re-allocate it unless the caller allows unmapping.
public final class RawImageFile: Sendable {
    /// The open descriptor (close-on-exec), closed with the object.
    public let fileDescriptor: Int32
    public let path: String
    public let readOnly: Bool

    /// Opens `path` read-write, or read-only.
    public init(path: String, readOnly: Bool) throws(SystemError) {
        let flags = (readOnly ? O_RDONLY : O_RDWR) | O_CLOEXEC
        fileDescriptor = try retryingOnInterrupt("open", arguments: "\(path), \(readOnly ? "O_RDONLY" : "O_RDWR")") {
            open(path, flags)
        }
        self.path = path
        self.readOnly = readOnly
    }

    deinit { close(fileDescriptor) }

    /// The file's size in bytes.
    public func size() throws(SystemError) -> UInt64 {
        let end = try retryingOnInterrupt("lseek", arguments: "\(path), SEEK_END") { lseek(fileDescriptor, 0, SEEK_END) }
        return UInt64(end)
    }

    /// Reads `count` bytes at `offset` into `buffer[0..<count]`; bytes past the end of the
    /// file read as zeros (as QEMU's raw driver pads a short read).
    public func read(into buffer: inout [UInt8], count: Int, at offset: UInt64) throws(SystemError) {
        precondition(count >= 0 && count <= buffer.count, "read into a buffer too small")
        var done = 0
        let result = buffer.withUnsafeMutableBytes { raw -> SystemError? in
            while done < count {
                let n = pread(fileDescriptor, raw.baseAddress! + done, count - done, off_t(offset) + off_t(done))
                if n > 0 { done += n; continue }
                if n == 0 { break }
                let code = currentErrno()
                if code == EINTR { continue }
                return SystemError(operation: "pread", arguments: "\(path), offset=\(offset), count=\(count)", errno: code)
            }
            if done < count { (raw.baseAddress! + done).initializeMemory(as: UInt8.self, repeating: 0, count: count - done) }
            return nil
        }
        if let result { throw result }
    }

    /// Writes `bytes` at `offset`, completing short writes.
    public func write(_ bytes: ArraySlice<UInt8>, at offset: UInt64) throws(SystemError) {
        let count = bytes.count
        let result = bytes.withUnsafeBytes { raw -> SystemError? in
            var done = 0
            while done < count {
                let n = pwrite(fileDescriptor, raw.baseAddress! + done, count - done, off_t(offset) + off_t(done))
                if n > 0 { done += n; continue }
                let code = n == 0 ? EIO : currentErrno()
                if code == EINTR { continue }
                return SystemError(operation: "pwrite", arguments: "\(path), offset=\(offset), count=\(count)", errno: code)
            }
            return nil
        }
        if let result { throw result }
    }

    /// Makes written data durable. QEMU: bdrv_co_flush() → fdatasync.
    public func flush() throws(SystemError) {
        _ = try retryingOnInterrupt("fdatasync", arguments: path) { fdatasync(fileDescriptor) }
    }

    /// Zeroes `[offset, offset + length)`: with `mayUnmap` the range is deallocated (a hole),
    /// otherwise it stays allocated. Returns false where the file system has no hole punching
    /// (the caller then writes zeros). QEMU: raw `handle_aiocb_write_zeroes()`.
    public func zeroRange(at offset: UInt64, length: UInt64, mayUnmap: Bool) throws(SystemError) -> Bool {
        guard length > 0 else { return true }
        let args = "\(path), offset=\(offset), length=\(length)"
        let off = Int64(bitPattern: offset), len = Int64(bitPattern: length)
        let punched = ckvm_fallocate(fileDescriptor, CKVM_FALLOC_FL_PUNCH_HOLE | CKVM_FALLOC_FL_KEEP_SIZE, off, len)
        if punched != 0 {
            let code = currentErrno()
            if code == EOPNOTSUPP || code == ENOSYS { return false }
            throw SystemError(operation: "fallocate(PUNCH_HOLE)", arguments: args, errno: code)
        }
        if !mayUnmap {
            // Allocate the hole again so a later write cannot fail for lack of space.
            _ = try retryingOnInterrupt("fallocate", arguments: args) { ckvm_fallocate(fileDescriptor, 0, off, len) }
        }
        return true
    }
}
