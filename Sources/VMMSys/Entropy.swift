internal import CKVM
#if canImport(Glibc)
import Glibc
#endif

/// Fills buffers from the kernel's random source (`getrandom`, blocking only until the pool is
/// initialized at boot). QEMU: the rng-random / rng-builtin backends.
package enum Entropy {
    /// Fills `buffer[0..<count]` with random bytes in one call where the kernel allows
    /// (`getrandom` returns at most 32 MiB - 1 per call; larger requests loop).
    package static func fill(_ buffer: inout [UInt8], count: Int) throws(SystemError) {
        precondition(count >= 0 && count <= buffer.count, "entropy request larger than its buffer")
        var done = 0
        while done < count {
            let want = count - done
            let n = try retryingOnInterrupt("getrandom", arguments: "count=\(want)") {
                // SAFETY: [done, done + want) lies inside the buffer (count <= buffer.count).
                unsafe buffer.withUnsafeMutableBytes { raw in unsafe getrandom(raw.baseAddress! + done, want, 0) }
            }
            guard n > 0 else { throw SystemError(operation: "getrandom", arguments: "count=\(want)", code: .ioError) }
            done += n
        }
    }
}
