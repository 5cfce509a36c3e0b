import Synchronization

/// A weak back-reference that a device's region ops use to reach the device owning the region,
/// so the region (held by the device) does not keep its device alive through a cycle. Set once
/// right after the owner's init; a read after the owner is gone yields nil and the access is
/// treated as unassigned.
final class WeakBox<Target: AnyObject & Sendable>: Sendable {
    private struct Ref { weak var value: Target? }
    private let ref = Mutex(Ref())

    init() {}

    func set(_ target: Target) { ref.withLock { $0.value = target } }

    var value: Target? { ref.withLock { $0.value } }
}
