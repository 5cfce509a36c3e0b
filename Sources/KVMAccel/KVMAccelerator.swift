import KVM
import Logging
import Memory
import Synchronization
import VMMSys

/// The KVM accelerator, built as QEMU builds it: just listeners on the machine's address
/// spaces. RAM and ROM become memory slots, ioeventfds become `KVM_IOEVENTFD`s; nothing
/// KVM-specific lives in the memory API. QEMU: `kvm_init()` and `KVMState`.
public final class KVMAccelerator: Sendable {
    public let vm: VirtualMachine
    /// `KVM_CAP_IOEVENTFD`: without it no eventfd listener is registered and every doorbell
    /// is signalled by userspace dispatch. QEMU: `kvm_eventfds_allowed`.
    public let hasIoeventfds: Bool
    /// `KVM_CAP_IOEVENTFD_ANY_LENGTH`: zero-length ("fast MMIO") ioeventfds.
    /// QEMU: `kvm_ioeventfd_any_length_allowed`.
    public let anyLengthIoeventfds: Bool
    /// `KVM_CAP_READONLY_MEM`: ROM as read-only slots (else ROM is left to MMIO dispatch).
    public let readOnlyMemory: Bool
    public let logger: Logger

    let slots: MemorySlots
    let ioeventfdStats = Mutex<IoeventfdStats>(IoeventfdStats())
    private let listeners = Mutex<[any MemoryListener]>([])
    let routing: IRQRouting
    private let warningCount = Atomic<Int>(0)
    static let loggedWarnings = 20

    /// Counts of what the eventfd listeners asked of the kernel.
    public struct IoeventfdStats: Sendable, Equatable {
        public var assigned = 0
        public var deassigned = 0
        public var refused = 0
    }

    /// Queries the capabilities of `vm`'s KVM. Call `attach` to start listening.
    public init(vm: VirtualMachine, logger: Logger = Logger(label: "vmm.kvm")) {
        self.vm = vm
        self.logger = logger
        let sys = vm.system
        hasIoeventfds = sys.checkExtension(KVMCapability.ioeventfd) > 0
        anyLengthIoeventfds = sys.checkExtension(KVMCapability.ioeventfdAnyLength) > 0
        readOnlyMemory = sys.checkExtension(KVMCapability.readOnlyMemory) > 0
        let n = sys.checkExtension(KVMCapability.nrMemorySlots)
        slots = MemorySlots(vm: vm, count: n > 0 ? n : 32, logger: logger)
        routing = IRQRouting(vm: vm)
    }

    /// Registers the memory listener on `memory` and the port-I/O listener on `io`.
    /// QEMU: `kvm_memory_listener_register()` and `kvm_io_listener` in `kvm_init()`.
    public func attach(memory: AddressSpace, io: AddressSpace) {
        let mem = KVMMemoryListener(accelerator: self, eventfds: hasIoeventfds)
        let pio = KVMPortIOListener(accelerator: self, eventfds: hasIoeventfds)
        memory.register(mem)
        io.register(pio)
        memory.acceleratorHandlesIoeventfds = hasIoeventfds
        io.acceleratorHandlesIoeventfds = hasIoeventfds
        listeners.withLock { $0 += [mem, pio] }
    }

    /// What the eventfd listeners did so far.
    public var ioeventfdCounts: IoeventfdStats { ioeventfdStats.withLock { $0 } }

    /// The memory slots currently registered.
    public var memorySlots: [MemorySlots.Slot] { slots.current }

    // MARK: ioeventfds

    /// Registers or removes one ioeventfd in the kernel; on failure logs the ioctl, its
    /// arguments and errno, and leaves the ioeventfd to userspace signalling.
    /// QEMU: `kvm_set_ioeventfd_mmio()` / `kvm_set_ioeventfd_pio()`.
    func setIoeventfd(_ fd: MemoryRegionIoeventfd, in space: AddressSpace, pio: Bool, assign: Bool) {
        // A refused one never reached the kernel: deleting it just forgets the refusal.
        if !assign, space.ioeventfdAccepted(fd) { return }
        if fd.size == 0 && !anyLengthIoeventfds {
            logLimited("ioeventfd \(fd) in \(space.name): zero-length ioeventfds need KVM_CAP_IOEVENTFD_ANY_LENGTH; userspace will signal it")
            refuse(fd, in: space)
            return
        }
        let address: IoEventAddress = pio ? .pio(fd.start) : .mmio(fd.start)
        do {
            try vm.ioeventfd(fd.notifier, address: address, length: UInt32(fd.size),
                             datamatch: fd.matchData ? fd.data : nil, deassign: !assign)
            ioeventfdStats.withLock { if assign { $0.assigned += 1 } else { $0.deassigned += 1 } }
        } catch {
            // Both can be provoked by the guest (BARs moved onto each other give EEXIST; a
            // refusal past the address space's list cap is deassigned here and gives ENOENT).
            if assign {
                logLimited("\(error); userspace will signal this ioeventfd instead")
                refuse(fd, in: space)
            } else {
                logLimited("\(error)")
            }
        }
    }

    /// Logs a warning a guest may provoke over and over (by moving BARs onto each other, say):
    /// the first `loggedWarnings` only.
    private func logLimited(_ message: String) {
        let n = warningCount.add(1, ordering: .relaxed).newValue
        guard n <= Self.loggedWarnings else { return }
        let more = n == Self.loggedWarnings ? " (further ioeventfd warnings are not logged)" : ""
        logger.warning("\(message)\(more)")
    }

    private func refuse(_ fd: MemoryRegionIoeventfd, in space: AddressSpace) {
        ioeventfdStats.withLock { $0.refused += 1 }
        space.ioeventfdRefused(fd)
    }

    // MARK: Interrupts

    /// Binds `notifier` to `gsi`: signalling it injects the interrupt in the kernel, with no
    /// exit. With `resample`, the GSI is level-triggered and `resample` is signalled when the
    /// guest acknowledges it. QEMU: `kvm_irqchip_add_irqfd_notifier_gsi()`.
    public func addIrqfd(_ notifier: EventNotifier, gsi: UInt32, resample: EventNotifier? = nil) throws(SystemError) {
        try vm.irqfd(notifier: notifier, gsi: gsi, resample: resample)
    }

    /// Unbinds an irqfd. QEMU: `kvm_irqchip_remove_irqfd_notifier_gsi()`.
    public func removeIrqfd(_ notifier: EventNotifier, gsi: UInt32) throws(SystemError) {
        try vm.irqfd(notifier: notifier, gsi: gsi, deassign: true)
    }

    /// Allocates a GSI routed to the MSI message (address, data) — for an MSI irqfd.
    /// QEMU: `kvm_irqchip_add_msi_route()`.
    public func addMSIRoute(address: UInt64, data: UInt32) throws(SystemError) -> UInt32 {
        try routing.addMSI(address: address, data: data)
    }

    /// Frees an MSI route. QEMU: `kvm_irqchip_release_virq()`.
    public func removeMSIRoute(gsi: UInt32) throws(SystemError) {
        try routing.remove(gsi: gsi)
    }

    /// The GSIs of the MSI routes in use, ascending: one per connected MSI-X vector on the pc
    /// machine, however often the guest reprograms its vectors (never more than
    /// `maxMSIRoutes`).
    public var msiRouteGSIs: [UInt32] { routing.msiRoutes.keys.sorted() }

    /// The most MSI routes in use at once; `addMSIRoute` fails with ENOSPC beyond it.
    public static var maxMSIRoutes: Int { IRQRouting.maxMSIRoutes }

    /// Sets an in-kernel irqchip input line (ISA IRQ / GSI). QEMU: `kvm_set_irq()`.
    public func setIRQLine(_ irq: UInt32, level: Bool) {
        do { try vm.irqLine(irq: irq, level: level) } catch { logger.error("\(error)") }
    }
}
