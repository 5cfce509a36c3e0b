#if canImport(Glibc)
import Glibc
#endif

/// Writes a whole buffer to `fd`, retrying short writes and EINTR; gives up silently on other
/// errors (a closed terminal must not stop a guest that prints). Returns whether all was written.
@discardableResult
public func writeFully(_ fd: Int32, _ bytes: [UInt8]) -> Bool {
    bytes.withUnsafeBytes { raw in
        var done = 0
        while done < raw.count {
            let n = write(fd, raw.baseAddress! + done, raw.count - done)
            if n > 0 {
                done += n
            } else if n < 0 && currentErrno() == EINTR {
                continue
            } else {
                return false
            }
        }
        return true
    }
}
