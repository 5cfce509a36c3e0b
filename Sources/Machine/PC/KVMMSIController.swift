import Devices
import KVMAccel
import Logging
import Synchronization
import VMMSys

/// MSI delivery on KVM: each live MSI-X vector gets a GSI routed to its message and an irqfd,
/// so a device signals a completion without an exit or an ioctl. Falls back to
/// KVM_SIGNAL_MSI when routing fails. QEMU: virtio-pci's `kvm_virtio_pci_vector_use()`.
///
/// `MSIX` calls in with its own lock held; below it, `routes` and the accelerator's routing
/// lock are each taken on their own, never one inside the other (see `MSIX`, "Lock order").
/// Each live connection keeps its notifier in `routes` until `disconnect`, so its eventfd stays
/// open and its identity cannot be reused while the kernel still has the irqfd; a storm of
/// connects and disconnects therefore holds at most one GSI and one eventfd per live vector.
final class KVMMSIController: MSIController {
    private let accelerator: KVMAccelerator
    private let logger: Logger
    private let routes = Mutex<[ObjectIdentifier: (notifier: EventNotifier, gsi: UInt32)]>([:])
    private let problems = Atomic<Int>(0)
    /// Guest-provoked failures logged (routes exhausted, a refused irqfd): the first ones only.
    static let loggedProblems = 10

    init(accelerator: KVMAccelerator, logger: Logger) {
        self.accelerator = accelerator
        self.logger = logger
    }

    func connect(address: UInt64, data: UInt32) -> EventNotifier? {
        do {
            let gsi = try accelerator.addMSIRoute(address: address, data: data)
            let notifier: EventNotifier
            do {
                notifier = try EventNotifier()
                try accelerator.addIrqfd(notifier, gsi: gsi)
            } catch {
                try? accelerator.removeMSIRoute(gsi: gsi)
                throw error
            }
            routes.withLock { $0[ObjectIdentifier(notifier)] = (notifier, gsi) }
            return notifier
        } catch {
            logLimited("MSI 0x\(String(address, radix: 16))/0x\(String(data, radix: 16)): \(error); delivering with KVM_SIGNAL_MSI")
            return nil
        }
    }

    /// Unbinds the irqfd and frees the route; the route is freed even when unbinding failed,
    /// so a failure cannot pin a GSI.
    func disconnect(_ notifier: EventNotifier) {
        guard let entry = routes.withLock({ $0.removeValue(forKey: ObjectIdentifier(notifier)) }) else { return }
        do { try accelerator.removeIrqfd(entry.notifier, gsi: entry.gsi) } catch { logLimited("\(error)") }
        do { try accelerator.removeMSIRoute(gsi: entry.gsi) } catch { logLimited("\(error)") }
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
