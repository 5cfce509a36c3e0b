#if canImport(Glibc)
import Glibc
#endif

/// A small deterministic generator (SplitMix64), so a randomized test prints a seed that
/// reproduces its failure. `VMM_TEST_SEED` (decimal or 0x-hex) replays a run.
public struct SeededGenerator: RandomNumberGenerator {
    public var state: UInt64
    /// The seed this generator started from (to print in failures).
    public let seed: UInt64

    public init(seed: UInt64) {
        self.seed = seed
        state = seed
    }

    /// The seed a test should use: `VMM_TEST_SEED`, or a fresh random one.
    public static func seedFromEnvironment() -> UInt64 {
        if let text = getenv("VMM_TEST_SEED").map({ String(cString: $0) }) {
            let parsed = text.hasPrefix("0x") ? UInt64(text.dropFirst(2), radix: 16) : UInt64(text)
            if let parsed { return parsed }
        }
        return UInt64.random(in: 0...UInt64.max)
    }

    public mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
