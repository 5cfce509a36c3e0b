/// A fuzz target's own check failed: the code under test did something its contract (or the
/// oracle) says it must not. The libFuzzer entry point turns it into a crash; the corpus
/// replay tests report it as a test failure.
public struct FuzzFailure: Error, CustomStringConvertible {
    public let target: String
    public let message: String

    public init(_ target: String, _ message: String) {
        self.target = target
        self.message = message
    }

    public var description: String { "fuzz target \(target): \(message)" }
}

/// Throws a `FuzzFailure` for `target` unless `condition` holds.
@inline(__always)
func require(_ condition: Bool, _ target: String, _ message: @autoclosure () -> String) throws(FuzzFailure) {
    if !condition { throw FuzzFailure(target, message()) }
}
