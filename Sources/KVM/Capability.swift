internal import CKVM

/// The `KVM_CAP_*` numbers the accelerator asks about (`KVMSystem.checkExtension`).
public enum KVMCapability {
    public static let ioeventfd = Int32(KVM_CAP_IOEVENTFD)
    public static let ioeventfdAnyLength = Int32(KVM_CAP_IOEVENTFD_ANY_LENGTH)
    public static let irqfd = Int32(KVM_CAP_IRQFD)
    public static let irqfdResample = Int32(KVM_CAP_IRQFD_RESAMPLE)
    public static let irqRouting = Int32(KVM_CAP_IRQ_ROUTING)
    public static let readOnlyMemory = Int32(KVM_CAP_READONLY_MEM)
    public static let userMemory = Int32(KVM_CAP_USER_MEMORY)
    public static let nrMemorySlots = Int32(KVM_CAP_NR_MEMSLOTS)
    public static let immediateExit = Int32(KVM_CAP_IMMEDIATE_EXIT)
    public static let signalMSI = Int32(KVM_CAP_SIGNAL_MSI)
    public static let pit2 = Int32(KVM_CAP_PIT2)
    public static let irqchip = Int32(KVM_CAP_IRQCHIP)
    /// Its value is the page of the vCPU mapping holding the coalesced ring (0: absent).
    public static let coalescedMMIO = Int32(KVM_CAP_COALESCED_MMIO)
    public static let coalescedPIO = Int32(KVM_CAP_COALESCED_PIO)
    /// Its value is the mask of `KVM_DIRTY_LOG_MANUAL_PROTECT_ENABLE | _INITIALLY_SET` offered.
    public static let manualDirtyLogProtect2 = Int32(KVM_CAP_MANUAL_DIRTY_LOG_PROTECT2)
}
