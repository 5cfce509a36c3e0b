import Devices
import Foundation
import VMMSys

/// An MSI controller that checks how MSI-X uses it: every `disconnect` names a notifier it
/// handed out and has not yet taken back, and no more vectors are live than the table has.
/// Messages sent without an irqfd are counted. Violations are remembered for the target to
/// report (the controller is called with the device's locks held, so it must not throw).
final class CheckingMSIController: MSIController, @unchecked Sendable {
    // @unchecked: all state is guarded by `lock`.
    private let lock = NSLock()
    private var live: [ObjectIdentifier: (address: UInt64, data: UInt32, notifier: EventNotifier)] = [:]
    private var problems: [String] = []
    private(set) var sentCount = 0
    /// Hand out real eventfds (false: refuse, so MSI-X falls back to `send`).
    let connects: Bool

    init(connects: Bool) { self.connects = connects }

    func connect(address: UInt64, data: UInt32) -> EventNotifier? {
        guard connects, let n = try? EventNotifier() else { return nil }
        lock.lock(); defer { lock.unlock() }
        live[ObjectIdentifier(n)] = (address, data, n)
        return n
    }

    func disconnect(_ notifier: EventNotifier) {
        lock.lock(); defer { lock.unlock() }
        if live.removeValue(forKey: ObjectIdentifier(notifier)) == nil {
            problems.append("disconnect of a notifier that is not connected")
        }
    }

    func send(address: UInt64, data: UInt32) {
        lock.lock(); defer { lock.unlock() }
        sentCount += 1
    }

    var liveCount: Int { lock.lock(); defer { lock.unlock() }; return live.count }

    /// The live routes, by message.
    var liveMessages: [(address: UInt64, data: UInt32)] {
        lock.lock(); defer { lock.unlock() }
        return live.values.map { ($0.address, $0.data) }
    }

    /// Problems seen since the last call, cleared.
    func takeProblems() -> [String] {
        lock.lock(); defer { lock.unlock() }
        defer { problems = [] }
        return problems
    }

    func resetCounts() { lock.lock(); sentCount = 0; lock.unlock() }
}

/// An access width from one byte: 1, 2, 4 or 8.
func accessSize(_ b: UInt8) -> Int { 1 << Int(b & 3) }
