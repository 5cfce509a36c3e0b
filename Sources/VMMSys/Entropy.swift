internal import CKVM
#if canImport(Glibc)
import Glibc
#endif

/// Fills buffers from the kernel's random source (`getrandom`, blocking only until the pool is
/// initialized at boot). QEMU: the rng-random / rng-builtin backends.
public enum Entropy {
    /// Fills `buffer[0..<count]` with random bytes in one call where the kernel allows
    /// (`getrandom` returns at most 32 MiB - 1 per call; larger requests loop).
    public static func fill(_ buffer: inout [UInt8], count: Int) throws(SystemError) {
        precondition(count >= 0 && count <= buffer.count, "entropy request larger than its buffer")
        let result = buffer.withUnsafeMutableBytes { raw -> SystemError? in
            var done = 0
            while done < count {
                let n = getrandom(raw.baseAddress! + done, count - done, 0)
                if n > 0 { done += n; continue }
                let code = currentErrno()
                if code == EINTR { continue }
                return SystemError(operation: "getrandom", arguments: "count=\(count - done)", errno: code)
            }
            return nil
        }
        if let result { throw result }
    }
}
