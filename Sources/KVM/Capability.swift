internal import CKVM

/// The `KVM_CAP_*` numbers the accelerator asks about (``KVMSystem/checkExtension(_:)``).
/// Each is the kernel constant of that name; the value `checkExtension` returns is 0 when the
/// capability is absent.
public enum KVMCapability {
    /// `KVM_CAP_IOEVENTFD`: ``VirtualMachine/ioeventfd(fileDescriptor:address:length:datamatch:deassign:)``.
    public static let ioeventfd = Int32(KVM_CAP_IOEVENTFD)
    /// `KVM_CAP_IOEVENTFD_ANY_LENGTH`: zero-length MMIO ioeventfds ("fast MMIO").
    public static let ioeventfdAnyLength = Int32(KVM_CAP_IOEVENTFD_ANY_LENGTH)
    /// `KVM_CAP_IRQFD`: ``VirtualMachine/irqfd(notifier:gsi:resample:deassign:)``.
    public static let irqfd = Int32(KVM_CAP_IRQFD)
    /// `KVM_CAP_IRQFD_RESAMPLE`: level-triggered irqfds with a resample eventfd.
    public static let irqfdResample = Int32(KVM_CAP_IRQFD_RESAMPLE)
    /// `KVM_CAP_IRQ_ROUTING`: ``VirtualMachine/setGSIRouting(_:)``; its value is the most
    /// routes the kernel takes.
    public static let irqRouting = Int32(KVM_CAP_IRQ_ROUTING)
    /// `KVM_CAP_READONLY_MEM`: ``MemoryRegionFlags/readOnly`` slots.
    public static let readOnlyMemory = Int32(KVM_CAP_READONLY_MEM)
    /// `KVM_CAP_USER_MEMORY`: ``VirtualMachine/setUserMemoryRegion(slot:flags:guestPhysicalAddress:size:hostAddress:)``.
    public static let userMemory = Int32(KVM_CAP_USER_MEMORY)
    /// `KVM_CAP_NR_MEMSLOTS`: its value is the number of memory slots a VM may use.
    public static let nrMemorySlots = Int32(KVM_CAP_NR_MEMSLOTS)
    /// `KVM_CAP_IMMEDIATE_EXIT`: ``VCPU/immediateExit``.
    public static let immediateExit = Int32(KVM_CAP_IMMEDIATE_EXIT)
    /// `KVM_CAP_SIGNAL_MSI`: ``VirtualMachine/signalMSI(address:data:)``.
    public static let signalMSI = Int32(KVM_CAP_SIGNAL_MSI)
    /// `KVM_CAP_PIT2`: ``VirtualMachine/createPIT2(flags:)``.
    public static let pit2 = Int32(KVM_CAP_PIT2)
    /// `KVM_CAP_IRQCHIP`: ``VirtualMachine/createIrqchip()``.
    public static let irqchip = Int32(KVM_CAP_IRQCHIP)
    /// `KVM_CAP_COALESCED_MMIO`: its value is the page of the vCPU mapping holding the
    /// coalesced ring (0: absent).
    public static let coalescedMMIO = Int32(KVM_CAP_COALESCED_MMIO)
    /// `KVM_CAP_COALESCED_PIO`: coalesced zones may be port I/O too.
    public static let coalescedPIO = Int32(KVM_CAP_COALESCED_PIO)
    /// `KVM_CAP_MANUAL_DIRTY_LOG_PROTECT2`: its value is the mask of
    /// `KVM_DIRTY_LOG_MANUAL_PROTECT_ENABLE | _INITIALLY_SET` offered.
    public static let manualDirtyLogProtect2 = Int32(KVM_CAP_MANUAL_DIRTY_LOG_PROTECT2)
}
