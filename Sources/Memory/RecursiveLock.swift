import Foundation

/// The memory API's big lock: recursive, because a topology change made inside a transaction
/// (or by a listener reacting to one) re-enters it. QEMU: the BQL around memory updates.
final class RecursiveLock: @unchecked Sendable {
    // @unchecked: NSRecursiveLock is itself thread-safe.
    private let inner = NSRecursiveLock()
    func lock() { inner.lock() }
    func unlock() { inner.unlock() }
}
