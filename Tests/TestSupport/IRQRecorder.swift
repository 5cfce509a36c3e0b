import Devices
import Synchronization

/// An interrupt line that records every level it is driven to, for tests of devices and
/// transports that raise and lower their IRQs.
public final class IRQRecorder: Sendable {
    private let levels = Mutex<[Bool]>([])

    public init() {}

    /// A line that appends each level to this recorder.
    public var irq: IRQ { IRQ { level in self.levels.withLock { $0.append(level) } } }
    /// Every level driven so far, in order.
    public var history: [Bool] { levels.withLock { $0 } }
    /// The current level (low before the first `set`).
    public var level: Bool { levels.withLock { $0.last ?? false } }
    /// How many times the line was driven high.
    public var raises: Int { levels.withLock { $0.filter { $0 }.count } }
    /// Forgets the history.
    public func clear() { levels.withLock { $0 = [] } }
}
