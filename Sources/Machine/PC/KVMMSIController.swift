import Devices
import KVMAccel
import Logging
import Synchronization
import VMMSys

/// MSI delivery on KVM: each live MSI-X vector gets a GSI routed to its message and an irqfd,
/// so a device signals a completion without an exit or an ioctl. Falls back to
/// KVM_SIGNAL_MSI when routing fails. QEMU: virtio-pci's `kvm_virtio_pci_vector_use()`.
final class KVMMSIController: MSIController {
    private let accelerator: KVMAccelerator
    private let logger: Logger
    private let routes = Mutex<[ObjectIdentifier: UInt32]>([:])

    init(accelerator: KVMAccelerator, logger: Logger) {
        self.accelerator = accelerator
        self.logger = logger
    }

    func connect(address: UInt64, data: UInt32) -> EventNotifier? {
        do {
            let gsi = try accelerator.addMSIRoute(address: address, data: data)
            let notifier = try EventNotifier()
            do {
                try accelerator.addIrqfd(notifier, gsi: gsi)
            } catch {
                try? accelerator.removeMSIRoute(gsi: gsi)
                throw error
            }
            routes.withLock { $0[ObjectIdentifier(notifier)] = gsi }
            return notifier
        } catch {
            logger.warning("MSI 0x\(String(address, radix: 16))/0x\(String(data, radix: 16)): \(error); delivering with KVM_SIGNAL_MSI")
            return nil
        }
    }

    func disconnect(_ notifier: EventNotifier) {
        guard let gsi = routes.withLock({ $0.removeValue(forKey: ObjectIdentifier(notifier)) }) else { return }
        do {
            try accelerator.removeIrqfd(notifier, gsi: gsi)
            try accelerator.removeMSIRoute(gsi: gsi)
        } catch {
            logger.error("\(error)")
        }
    }

    func send(address: UInt64, data: UInt32) {
        do { _ = try accelerator.vm.signalMSI(address: address, data: data) } catch { logger.error("\(error)") }
    }
}
