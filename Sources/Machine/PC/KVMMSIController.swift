import Devices
import KVMAccel
import Logging
import Synchronization
import VMMSys

/// MSI delivery on KVM: each live MSI-X vector gets a GSI routed to its message and an irqfd,
/// so a device signals a completion without an exit or an ioctl. Falls back to
/// KVM_SIGNAL_MSI when routing fails. QEMU: virtio-pci's `kvm_virtio_pci_vector_use()`.
///
/// **Idle connections (a deliberate difference).** QEMU releases the irqfd when a vector is
/// masked and re-binds it on unmask (`kvm_virtio_pci_irqfd_release`/`_use`), and rewrites the
/// vector's route with `KVM_SET_GSI_ROUTING` when its message changes: a driver that masks,
/// reprograms and unmasks pays three or four ioctls that each wait for the kernel (an SRCU
/// grace period for the routing table, the irqfd work queue for a release). Here `disconnect`
/// keeps the route, the irqfd and the eventfd together as an *idle* connection, keyed by its
/// message, and `connect` with a message an idle connection carries takes it back with no
/// ioctl at all. An idle irqfd cannot fire: only `MSIX` signals these eventfds, and only for
/// a vector it holds connected, under its lock. At most `idleLimit` idle connections are
/// kept (oldest released first), and all of them give way when the route table is full, so
/// the kernel's table stays bounded by the live vectors plus `idleLimit`.
///
/// `MSIX` calls in with its own lock held; below it, `state` and the accelerator's routing
/// lock are each taken on their own, never one inside the other (see `MSIX`, "Lock order").
/// Each live connection keeps its notifier in `state` until `disconnect`, so its eventfd stays
/// open and its identity cannot be reused while the kernel still has the irqfd.
final class KVMMSIController: MSIController {
    /// Idle connections kept for reuse, per machine.
    static let idleLimit = 8
    /// Guest-provoked failures logged (routes exhausted, a refused irqfd): the first ones only.
    static let loggedProblems = 10

    struct Connection {
        var notifier: EventNotifier
        var gsi: UInt32
        var address: UInt64
        var data: UInt32
    }

    private struct State {
        var live: [ObjectIdentifier: Connection] = [:]
        /// Oldest first.
        var idle: [Connection] = []
    }

    private let accelerator: KVMAccelerator
    private let logger: Logger
    private let state = Mutex(State())
    private let problems = Atomic<Int>(0)

    init(accelerator: KVMAccelerator, logger: Logger) {
        self.accelerator = accelerator
        self.logger = logger
    }

    /// Connections kept idle for reuse (each holds one route, one irqfd, one eventfd).
    var idleConnections: Int { state.withLock { $0.idle.count } }

    func connect(address: UInt64, data: UInt32) -> EventNotifier? {
        let reused = state.withLock { s -> Connection? in
            guard let i = s.idle.lastIndex(where: { $0.address == address && $0.data == data }) else { return nil }
            let c = s.idle.remove(at: i)
            s.live[ObjectIdentifier(c.notifier)] = c
            return c
        }
        if let reused { return reused.notifier }
        do {
            let gsi: UInt32
            do {
                gsi = try accelerator.addMSIRoute(address: address, data: data)
            } catch {
                // The table is full: idle connections give way to a live one.
                guard releaseIdle(keeping: 0) > 0 else { throw error }
                gsi = try accelerator.addMSIRoute(address: address, data: data)
            }
            let notifier: EventNotifier
            do {
                notifier = try EventNotifier()
                try accelerator.addIrqfd(notifier, gsi: gsi)
            } catch {
                try? accelerator.removeMSIRoute(gsi: gsi)
                throw error
            }
            state.withLock { $0.live[ObjectIdentifier(notifier)] = Connection(notifier: notifier, gsi: gsi, address: address, data: data) }
            return notifier
        } catch {
            logLimited("MSI 0x\(String(address, radix: 16))/0x\(String(data, radix: 16)): \(error); delivering with KVM_SIGNAL_MSI")
            return nil
        }
    }

    /// Makes the connection idle (kept for a later `connect` with the same message); the
    /// oldest idle ones beyond `idleLimit` are released.
    func disconnect(_ notifier: EventNotifier) {
        let found = state.withLock { s -> Bool in
            guard let c = s.live.removeValue(forKey: ObjectIdentifier(notifier)) else { return false }
            s.idle.append(c)
            return true
        }
        if found { releaseIdle(keeping: Self.idleLimit) }
    }

    /// Releases the oldest idle connections until at most `keeping` remain: unbinds each irqfd
    /// and frees its route (even when unbinding failed, so a failure cannot pin a GSI).
    /// Returns how many were released.
    @discardableResult
    private func releaseIdle(keeping: Int) -> Int {
        let released = state.withLock { s -> [Connection] in
            let n = max(0, s.idle.count - keeping)
            defer { s.idle.removeFirst(n) }
            return Array(s.idle.prefix(n))
        }
        for c in released {
            do { try accelerator.removeIrqfd(c.notifier, gsi: c.gsi) } catch { logLimited("\(error)") }
            do { try accelerator.removeMSIRoute(gsi: c.gsi) } catch { logLimited("\(error)") }
        }
        return released.count
    }

    func send(address: UInt64, data: UInt32) {
        do { _ = try accelerator.vm.signalMSI(address: address, data: data) } catch { logLimited("\(error)") }
    }

    /// Every line here can be provoked by the guest over and over: log the first few only.
    private func logLimited(_ message: String) {
        let n = problems.add(1, ordering: .relaxed).newValue
        guard n <= Self.loggedProblems else { return }
        let more = n == Self.loggedProblems ? " (further MSI routing problems are not logged)" : ""
        logger.warning("\(message)\(more)")
    }
}
