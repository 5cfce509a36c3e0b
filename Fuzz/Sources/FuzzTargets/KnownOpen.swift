import Foundation

/// Failures already reported and awaiting a fix elsewhere, which a fuzzing session may step
/// around to keep exploring (`VMM_FUZZ_SKIP=tag,tag`; `Fuzz/run.sh` sets it from the `skip:`
/// tags in `Fuzz/regressions/KNOWN-OPEN`). Off by default, so `swift test` and CI check
/// everything.
enum KnownOpen {
    static let skipped: Set<String> = Set(
        (ProcessInfo.processInfo.environment["VMM_FUZZ_SKIP"] ?? "").split(separator: ",").map(String.init))

    /// Whether the fuzzer should step around the known failure `tag`.
    static func skip(_ tag: String) -> Bool { skipped.contains(tag) }
}
