import KVM
import Logging
import Memory
import Synchronization
import VMMSys

/// The KVM accelerator, built as QEMU builds it: just listeners on the machine's address
/// spaces. RAM and ROM become memory slots, ioeventfds become `KVM_IOEVENTFD`s; nothing
/// KVM-specific lives in the memory API. QEMU: `kvm_init()` and `KVMState`.
public final class KVMAccelerator: Sendable {
    /// The VM whose slots, ioeventfds and routes this accelerator manages. QEMU: `s->vmfd`.
    public let vm: VirtualMachine
    /// `KVM_CAP_IOEVENTFD`: without it no eventfd listener is registered and every doorbell
    /// is signalled by userspace dispatch. QEMU: `kvm_eventfds_allowed`.
    public let hasIoeventfds: Bool
    /// `KVM_CAP_IOEVENTFD_ANY_LENGTH`: zero-length ("fast MMIO") ioeventfds.
    /// QEMU: `kvm_ioeventfd_any_length_allowed`.
    public let anyLengthIoeventfds: Bool
    /// `KVM_CAP_READONLY_MEM`: ROM as read-only slots (else ROM is left to MMIO dispatch).
    public let readOnlyMemory: Bool
    /// `KVM_CAP_MANUAL_DIRTY_LOG_PROTECT2` enabled: dirty logs are re-armed page by page with
    /// `KVM_CLEAR_DIRTY_LOG` when the memory API clears them. QEMU: `s->manual_dirty_log_protect`.
    public let manualDirtyLogProtection: Bool
    package let logger: Logger

    let slots: MemorySlots
    let ioeventfdStats = Mutex<IoeventfdStats>(IoeventfdStats())
    let ioeventfdRegistry = IoeventfdRegistry(limit: AddressSpace.refusedIoeventfdLimit)
    let coalesced: CoalescedIO
    private let listeners = Mutex<[any MemoryListener]>([])
    let routing: IRQRouting
    private let warningCount = Atomic<Int>(0)
    static let loggedWarnings = 20

    /// Counts of what the eventfd listeners asked of the kernel.
    public struct IoeventfdStats: Sendable, Equatable {
        /// `KVM_IOEVENTFD` assigns the kernel took (retries included).
        public var assigned = 0
        /// `KVM_IOEVENTFD` deassigns the kernel took.
        public var deassigned = 0
        /// ioeventfds left to userspace signalling: refused by the kernel, or zero-length ones
        /// without `KVM_CAP_IOEVENTFD_ANY_LENGTH`.
        public var refused = 0
        /// Refused ones the kernel took later, when what was in their way went away.
        public var retried = 0
        /// EEXIST refusals (each reported with both owners, `ioeventfdConflicts`).
        public var conflicts = 0
        /// Deassigns the kernel refused (each reported).
        public var deassignFailures = 0
        /// Refusals past the retry list's cap: counted, never retried (userspace signals them).
        public var droppedRefusals = 0
    }

    /// Queries the capabilities of `vm`'s KVM and enables manual dirty-log protection where
    /// offered. Call `attach` to start listening.
    /// - Parameters:
    ///   - vm: the VM to drive; its system answers the capability queries.
    ///   - logger: where refused slots and ioeventfds, conflicts and ring faults are reported
    ///     (what a guest can provoke again and again is rate-limited).
    ///   - memorySlotLimit: slot numbers to use at most (default `MemorySlots.defaultLimit`,
    ///     never more than `KVM_CAP_NR_MEMSLOTS`).
    ///   - manualDirtyLogProtection: ask for `KVM_CAP_MANUAL_DIRTY_LOG_PROTECT2` (QEMU does
    ///     whenever the kernel has it); false keeps the legacy `KVM_GET_DIRTY_LOG` that clears.
    public init(vm: VirtualMachine, logger: Logger = Logger(label: "vmm.kvm"), memorySlotLimit: Int? = nil,
                manualDirtyLogProtection: Bool = true) {
        self.vm = vm
        self.logger = logger
        let sys = vm.system
        hasIoeventfds = sys.checkExtension(KVMCapability.ioeventfd) > 0
        anyLengthIoeventfds = sys.checkExtension(KVMCapability.ioeventfdAnyLength) > 0
        readOnlyMemory = sys.checkExtension(KVMCapability.readOnlyMemory) > 0
        var manual = false
        if manualDirtyLogProtection {
            do { manual = try vm.enableManualDirtyLogProtection() } catch {
                logger.warning("\(error); dirty logs will be cleared as they are read (legacy mode)")
            }
        }
        self.manualDirtyLogProtection = manual
        let n = sys.checkExtension(KVMCapability.nrMemorySlots)
        slots = MemorySlots(vm: vm, count: n > 0 ? n : 32, logger: logger, limit: memorySlotLimit, manualProtect: manual)
        routing = IRQRouting(vm: vm)
        coalesced = CoalescedIO(vm: vm, logger: logger)
    }

    /// Registers the memory listener on `memory` and the port-I/O listener on `io`, and
    /// installs the coalesced ring's drain in their memory system.
    /// QEMU: `kvm_memory_listener_register()`, `kvm_io_listener` and
    /// `kvm_coalesced_pio_listener` in `kvm_init()`.
    public func attach(memory: AddressSpace, io: AddressSpace) {
        let mem = KVMMemoryListener(accelerator: self, eventfds: hasIoeventfds)
        let pio = KVMPortIOListener(accelerator: self, eventfds: hasIoeventfds)
        coalesced.attach(memory: memory, io: io)
        if coalesced.mmioPage > 0 {
            let drain = coalesced
            memory.system.setCoalescedMMIOFlush { drain.flush() }
        }
        memory.register(mem)
        io.register(pio)
        memory.acceleratorHandlesIoeventfds = hasIoeventfds
        io.acceleratorHandlesIoeventfds = hasIoeventfds
        listeners.withLock { $0 += [mem, pio] }
    }

    /// What the eventfd listeners did so far.
    public var ioeventfdCounts: IoeventfdStats {
        var s = ioeventfdStats.withLock { $0 }
        s.droppedRefusals = ioeventfdRegistry.dropped
        return s
    }

    /// EEXIST conflicts reported so far (the first 64), each naming both owners where known.
    public var ioeventfdConflicts: [IoeventfdConflict] { ioeventfdRegistry.conflicts }

    /// Refused ioeventfds waiting to be retried.
    public var pendingIoeventfdRetries: Int { ioeventfdRegistry.refusals.count }

    /// The memory slots currently registered.
    public var memorySlots: [MemorySlots.Slot] { slots.current }

    // MARK: Guest memory errors

    /// Memory slots the kernel refused (or the accelerator had no number for), the first 16.
    /// The first also stops the vCPUs: every ``VCPURunner`` of this VM returns
    /// ``VCPUStopReason/failed(_:)`` with its description instead of entering the guest.
    public var memoryErrors: [KVMMemoryError] { slots.recordedErrors.list }

    /// Throws the first memory slot error, if any: for a machine to call once it is built
    /// (and after a topology change it makes), so the user sees one clear line instead of a
    /// guest running with RAM missing. QEMU has nothing to check: `kvm_set_phys_mem()` aborts
    /// the process where the slot is refused.
    public func checkMemory() throws(KVMMemoryError) {
        if let first = slots.recordedErrors.list.first { throw first }
    }

    // MARK: Coalesced I/O

    /// `KVM_CAP_COALESCED_MMIO`: coalesced MMIO ranges become kernel zones (otherwise their
    /// writes simply exit one by one). QEMU: `s->coalesced_mmio`.
    public var coalescedMMIO: Bool { coalesced.mmioPage > 0 }
    /// `KVM_CAP_COALESCED_PIO` as well: coalesced port ranges become kernel zones too.
    /// QEMU: `s->coalesced_pio`.
    public var coalescedPIO: Bool { coalesced.pio }

    /// Coalesced zones registered with the kernel now.
    public var coalescedZones: Int { coalesced.zoneCount }
    /// Buffered writes replayed from the ring into the address spaces so far.
    public var coalescedWritesDrained: UInt64 { coalesced.drained.load(ordering: .relaxed) }

    /// Replays the coalesced ring now (what every vCPU does before handling an exit).
    /// QEMU: `kvm_flush_coalesced_mmio_buffer()`.
    public func flushCoalescedIO() { coalesced.flush() }

    /// Logs a warning a guest may provoke over and over (by moving BARs onto each other, say):
    /// the first `loggedWarnings` only.
    func logLimited(_ message: String) {
        let n = warningCount.add(1, ordering: .relaxed).newValue
        guard n <= Self.loggedWarnings else { return }
        let more = n == Self.loggedWarnings ? " (further ioeventfd warnings are not logged)" : ""
        logger.warning("\(message)\(more)")
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
