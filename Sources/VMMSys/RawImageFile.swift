internal import CKVM
import SystemPackage
#if canImport(Glibc)
import Glibc
#endif

/// A disk image opened for positioned I/O: every read and write names its offset (`pread`/
/// `pwrite`), so requests never share a file position, and short transfers are completed.
/// Zeroing uses `fallocate` as QEMU's raw driver does (`handle_aiocb_write_zeroes()`): punch a
/// hole (keeping the size), and re-allocate it unless the caller allows unmapping.
package final class RawImageFile: Sendable {
    /// The open descriptor (close-on-exec), closed with the object.
    package let fileDescriptor: FileDescriptor
    package let path: String
    package let readOnly: Bool

    /// Opens `path` read-write, or read-only.
    package init(path: String, readOnly: Bool) throws(SystemError) {
        fileDescriptor = try systemCall("open", arguments: "\(path), \(readOnly ? "O_RDONLY" : "O_RDWR")") {
            try FileDescriptor.open(FilePath(path), readOnly ? .readOnly : .readWrite, options: .closeOnExec)
        }
        self.path = path
        self.readOnly = readOnly
    }

    deinit { try? fileDescriptor.close() }

    /// The file's size in bytes.
    package func size() throws(SystemError) -> UInt64 {
        let end = try systemCall("lseek", arguments: "\(path), SEEK_END") { try fileDescriptor.seek(offset: 0, from: .end) }
        return UInt64(end)
    }

    /// Reads `count` bytes at `offset` into `buffer[0..<count]`; bytes past the end of the
    /// file read as zeros (as QEMU's raw driver pads a short read).
    package func read(into buffer: inout [UInt8], count: Int, at offset: UInt64) throws(SystemError) {
        precondition(count >= 0 && count <= buffer.count, "read into a buffer too small")
        let arguments = "\(path), offset=\(offset), count=\(count)"
        guard let start = Int64(exactly: offset), count <= Int64.max - start else {
            throw SystemError(operation: "pread", arguments: arguments, code: .invalidArgument)
        }
        var done = 0
        while done < count {
            let at = start + Int64(done)
            let n = try systemCall("pread", arguments: arguments) {
                // SAFETY: [done, count) lies inside the buffer (count <= buffer.count).
                try unsafe buffer.withUnsafeMutableBytes { raw in
                    try unsafe fileDescriptor.read(fromAbsoluteOffset: at, into: UnsafeMutableRawBufferPointer(rebasing: raw[done..<count]))
                }
            }
            if n == 0 { break }                                   // end of file
            done += n
        }
        for i in done..<count { buffer[i] = 0 }
    }

    /// Writes `bytes` at `offset`, completing short writes.
    package func write(_ bytes: ArraySlice<UInt8>, at offset: UInt64) throws(SystemError) {
        let arguments = "\(path), offset=\(offset), count=\(bytes.count)"
        guard let start = Int64(exactly: offset), bytes.count <= Int64.max - start else {
            throw SystemError(operation: "pwrite", arguments: arguments, code: .invalidArgument)
        }
        _ = try systemCall("pwrite", arguments: arguments) { try fileDescriptor.writeAll(toAbsoluteOffset: start, bytes) }
    }

    /// Makes written data durable. QEMU: bdrv_co_flush() → fdatasync.
    package func flush() throws(SystemError) {
        _ = try retryingOnInterrupt("fdatasync", arguments: path) { fdatasync(fileDescriptor.rawValue) }
    }

    /// Zeroes `[offset, offset + length)`: with `mayUnmap` the range is deallocated (a hole),
    /// otherwise it stays allocated. Returns false where the file system has no hole punching
    /// (the caller then writes zeros). QEMU: raw `handle_aiocb_write_zeroes()`.
    package func zeroRange(at offset: UInt64, length: UInt64, mayUnmap: Bool) throws(SystemError) -> Bool {
        guard length > 0 else { return true }
        let args = "\(path), offset=\(offset), length=\(length)"
        let off = Int64(bitPattern: offset), len = Int64(bitPattern: length)
        let fd = fileDescriptor.rawValue
        do {
            _ = try retryingOnInterrupt("fallocate(PUNCH_HOLE)", arguments: args) {
                ckvm_fallocate(fd, CKVM_FALLOC_FL_PUNCH_HOLE | CKVM_FALLOC_FL_KEEP_SIZE, off, len)
            }
        } catch where error.errno == EOPNOTSUPP || error.code == .noFunction {
            return false
        }
        if !mayUnmap {
            // Allocate the hole again so a later write cannot fail for lack of space.
            _ = try retryingOnInterrupt("fallocate", arguments: args) { ckvm_fallocate(fd, 0, off, len) }
        }
        return true
    }
}
