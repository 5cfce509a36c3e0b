import KVM
import VMMSys

/// Guest memory the kernel would not map (or unmap) as the machine built it: a machine error,
/// not a warning, because the guest would otherwise run with a RAM range silently missing (its
/// accesses would exit as MMIO). The accelerator collects these (`memoryErrors`), records the
/// first on the VM so every vCPU stops with it before entering the guest
/// (``VCPUStopReason/failed(_:)``), and logs each once. QEMU: `kvm_set_phys_mem()` prints
/// "error registering slot" and aborts; `kvm_alloc_slot()` "no free slot available".
public struct KVMMemoryError: Error, Sendable, Equatable, CustomStringConvertible {
    /// What went wrong.
    public enum Cause: Sendable, Equatable {
        /// The kernel refused the ioctl (EEXIST: overlaps a slot; EINVAL: slot number beyond
        /// `KVM_CAP_NR_MEMSLOTS`, bad alignment; ENOMEM; …).
        case ioctl(SystemError)
        /// Every slot number the accelerator may use is taken.
        case noFreeSlot(inUse: Int, limit: Int, kernelLimit: Int)
        /// The section reaches past its region's RAM block (an inconsistent memory tree).
        case outsideBlock
        /// The guest page would start at this offset of the region, not at a page boundary of
        /// its host memory (an alias at an odd offset): the kernel maps only whole host pages
        /// (it would answer EINVAL; QEMU makes the call and aborts).
        case unalignedHostAddress(regionOffset: UInt64)
    }

    /// The region the section belongs to.
    public var region: String
    /// Start of the page-aligned guest range that was to be mapped or changed.
    public var guestAddress: UInt64
    /// Length in bytes of that range.
    public var size: UInt64
    /// "map", "unmap" or "set flags on".
    public var action: String
    /// Why it failed.
    public var cause: Cause

    /// The one line a user sees: what could not be done to which RAM, and why.
    public var description: String {
        let what = "cannot \(action) guest RAM '\(region)' at \(hex(guestAddress)) (\(hex(size)) bytes)"
        switch cause {
        case .ioctl(let error):
            return "\(what): \(error)"
        case .noFreeSlot(let inUse, let limit, let kernelLimit):
            return "\(what): no free KVM memory slot (\(inUse) in use; this accelerator uses at most \(limit) of KVM_CAP_NR_MEMSLOTS=\(kernelLimit))"
        case .outsideBlock:
            return "\(what): the section reaches past the region's RAM block"
        case .unalignedHostAddress(let offset):
            return "\(what): it starts at offset \(hex(offset)) of the region, not on a page boundary, and KVM maps whole pages"
        }
    }
}
