#if canImport(Glibc)
import Glibc
#endif

/// Reads what `fd` has (blocking until something arrives), up to `maxBytes`, retrying EINTR;
/// an empty result means end of file or an error. For the stdin readers (serial input).
package func readSome(_ fd: Int32, maxBytes: Int = 4096) -> [UInt8] {
    var buffer = [UInt8](repeating: 0, count: max(1, maxBytes))
    while true {
        // SAFETY: the buffer outlives the call and `read` writes at most its count.
        let n = unsafe buffer.withUnsafeMutableBytes { unsafe read(fd, $0.baseAddress, $0.count) }
        if n < 0 && currentErrno() == EINTR { continue }
        return n > 0 ? Array(buffer[0..<n]) : []
    }
}
