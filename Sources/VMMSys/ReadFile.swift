import SystemPackage
#if canImport(Glibc)
import Glibc
#endif

/// Reads a whole regular file (kernels, modules, initrds, firmware), retrying EINTR and short
/// reads. At most `maximumBytes`: larger files (and anything that is not a regular file,
/// e.g. /dev/zero, which would never end) are refused before anything is read.
package func readWholeFile(_ path: String, maximumBytes: UInt64) throws(SystemError) -> [UInt8] {
    let fd = try retryingOnInterrupt("open", arguments: path) {
        // SAFETY: the path is passed as a NUL-terminated copy that lives for the call.
        unsafe open(path, O_RDONLY | O_CLOEXEC)
    }
    defer { close(fd) }
    var st = stat()
    // SAFETY: fstat writes one `stat` into the local.
    guard unsafe fstat(fd, &st) == 0 else { throw SystemError(operation: "fstat", arguments: path, errno: currentErrno()) }
    guard st.st_mode & S_IFMT == S_IFREG else { throw SystemError(operation: "read", arguments: "\(path): not a regular file", errno: EINVAL) }
    let size = UInt64(clamping: st.st_size)
    guard size <= maximumBytes else { throw SystemError(operation: "read", arguments: "\(path): \(size) bytes, more than \(maximumBytes)", errno: EFBIG) }
    var bytes = [UInt8](repeating: 0, count: Int(size))
    var done = 0
    while done < bytes.count {
        // SAFETY: the buffer outlives the call and `read` writes at most the bytes left in it.
        let n = unsafe bytes.withUnsafeMutableBytes { unsafe read(fd, $0.baseAddress! + done, $0.count - done) }
        if n > 0 { done += n; continue }
        if n == 0 { break }                         // the file shrank under us: what was there
        let code = currentErrno()
        if code == EINTR { continue }
        throw SystemError(operation: "read", arguments: path, errno: code)
    }
    return Array(bytes[0..<done])
}

/// The running executable's path (/proc/self/exe resolved), e.g. for benchmarks that run
/// this same binary as a child.
package func currentExecutablePath() throws(SystemError) -> String {
    var buffer = [UInt8](repeating: 0, count: 4096)
    // SAFETY: readlink writes at most `count` bytes into the buffer, which outlives the call.
    let n = unsafe buffer.withUnsafeMutableBytes { unsafe readlink("/proc/self/exe", $0.baseAddress!.assumingMemoryBound(to: CChar.self), $0.count) }
    guard n > 0 else { throw SystemError(operation: "readlink", arguments: "/proc/self/exe", errno: currentErrno()) }
    return String(decoding: buffer[0..<n], as: UTF8.self)
}

/// Writes `bytes` as the whole content of `path` (created 0644 or truncated), with swift-system's
/// `writeAll`. Returns whether everything was written.
@discardableResult
package func writeWholeFile(_ path: String, _ bytes: [UInt8]) -> Bool {
    guard let fd = try? FileDescriptor.open(FilePath(path), .writeOnly, options: [.create, .truncate],
                                            permissions: [.ownerReadWrite, .groupRead, .otherRead]) else { return false }
    return (try? fd.closeAfter { try fd.writeAll(bytes) }) != nil
}
