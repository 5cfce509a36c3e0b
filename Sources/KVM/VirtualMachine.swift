internal import CKVM
import Synchronization
import SystemPackage
import VMMSys

/// Flags of a guest memory slot (`KVM_SET_USER_MEMORY_REGION`).
public struct MemoryRegionFlags: OptionSet, Sendable, Hashable {
    /// The `KVM_MEM_*` bits (`kvm_userspace_memory_region.flags`).
    public let rawValue: UInt32
    /// Wraps `KVM_MEM_*` bits, named here or not.
    public init(rawValue: UInt32) { self.rawValue = rawValue }

    /// `KVM_MEM_LOG_DIRTY_PAGES`: track guest writes for `KVM_GET_DIRTY_LOG`.
    public static let logDirtyPages = MemoryRegionFlags(rawValue: CKVM_MEM_LOG_DIRTY_PAGES)
    /// `KVM_MEM_READONLY`: guest writes exit as MMIO writes instead of landing (ROM).
    public static let readOnly = MemoryRegionFlags(rawValue: CKVM_MEM_READONLY)
}

/// One virtual machine (`KVM_CREATE_VM`): guest memory slots, the in-kernel interrupt
/// controllers and the exitless I/O plumbing (ioeventfd, irqfd, GSI routing).
/// rust-vmm: `kvm_ioctls::VmFd`.
///
/// Every mutation is an ioctl the kernel serializes; the little state kept here (the size of
/// each memory slot, for `getDirtyLog`; the coalesced ring; a recorded failure) is behind
/// locks, so the object is `Sendable` and may be used from the vCPU threads and the I/O
/// thread alike.
public final class VirtualMachine: Sendable {
    /// The VM descriptor.
    public let fileDescriptor: FileDescriptor
    /// The system this VM was created from (kept alive for `vcpuMmapSize`).
    public let system: KVMSystem

    /// Pages of each memory slot registered through `setUserMemoryRegion` (slot → pages), so
    /// `getDirtyLog` hands the kernel a bitmap exactly as large as it writes.
    let slotPages = Mutex<[UInt32: UInt64]>([:])
    /// The coalesced MMIO ring, from the first vCPU's mapping. QEMU: `s->coalesced_mmio_ring`.
    let ringStorage = Mutex<CoalescedMMIORing?>(nil)
    /// Why the VM must not run (first recorded wins), and a flag for the run loop's fast check.
    let failureStorage = Mutex<String?>(nil)
    let failed = Atomic<Bool>(false)

    init(fileDescriptor: FileDescriptor, system: KVMSystem) {
        self.fileDescriptor = fileDescriptor
        self.system = system
    }

    deinit { try? fileDescriptor.close() }

    /// `KVM_SET_USER_MEMORY_REGION`: maps `size` bytes at host address `hostAddress` as guest
    /// physical `guestPhysicalAddress…+size` in `slot`. A size of 0 deletes the slot.
    ///
    /// Safety: the guest may then read and write `[hostAddress, hostAddress + size)` at any
    /// time, so that range must be memory set aside for it (a RAM block's mapping) and must stay
    /// mapped for as long as the slot exists. The kernel checks only that it is user memory.
    /// QEMU: `kvm_set_user_memory_region()`.
    @unsafe
    public func setUserMemoryRegion(
        slot: UInt32, flags: MemoryRegionFlags = [], guestPhysicalAddress: UInt64, size: UInt64, hostAddress: UInt64
    ) throws(SystemError) {
        var region = kvm_userspace_memory_region(
            slot: slot, flags: flags.rawValue, guest_phys_addr: guestPhysicalAddress,
            memory_size: size, userspace_addr: hostAddress)
        let fd = fileDescriptor
        // The slot table is held across the ioctl: `getDirtyLog` sizes its buffer from it.
        try slotPages.withLock { table throws(SystemError) in
            try KVMIoctl.call(
                fd, CKVM_SET_USER_MEMORY_REGION, "KVM_SET_USER_MEMORY_REGION",
                "slot=\(slot) flags=\(hex(flags.rawValue)) gpa=\(hex(guestPhysicalAddress)) size=\(hex(size)) hva=\(hex(hostAddress))",
                value: &region)
            // The kernel counts pages of 4 KiB (x86); it refuses a size that is not whole pages.
            table[slot] = size == 0 ? nil : size / 4096 + (size % 4096 == 0 ? 0 : 1)
        }
    }

    /// `KVM_CREATE_IRQCHIP`: the in-kernel PIC pair, IOAPIC and per-vCPU local APICs.
    /// Must come before any vCPU is created. QEMU: `kvm_irqchip_create()`.
    public func createIrqchip() throws(SystemError) {
        try KVMIoctl.call(fileDescriptor, CKVM_CREATE_IRQCHIP, "KVM_CREATE_IRQCHIP", integer: 0)
    }

    /// `KVM_CREATE_PIT2`: the in-kernel i8254 (needs the irqchip). `flags` is
    /// `kvm_pit_config.flags` (0, or `KVM_PIT_SPEAKER_DUMMY` = 1).
    /// QEMU: `kvm_pit_realizefn()` (hw/i386/kvm/i8254.c; flags 0).
    public func createPIT2(flags: UInt32 = 0) throws(SystemError) {
        var config = kvm_pit_config()
        config.flags = flags
        try KVMIoctl.call(fileDescriptor, CKVM_CREATE_PIT2, "KVM_CREATE_PIT2", "flags=\(hex(flags))", value: &config)
    }

    /// `KVM_SET_TSS_ADDR`: three pages of guest physical space (below 4 GiB, not RAM) that
    /// Intel VMX needs for real-mode emulation. Conventionally 0xfffb_d000.
    /// QEMU: the `KVM_SET_TSS_ADDR` in `kvm_arch_init()` (target/i386/kvm/kvm.c), at 0xfeffd000.
    public func setTSSAddress(_ address: UInt64) throws(SystemError) {
        try KVMIoctl.call(fileDescriptor, CKVM_SET_TSS_ADDR, "KVM_SET_TSS_ADDR", "addr=\(hex(address))",
                          integer: UInt(address))
    }

    /// `KVM_SET_IDENTITY_MAP_ADDR`: one page for the VMX identity page table (conventionally
    /// 0xfffb_c000, just below the TSS). Must precede vCPU creation.
    /// QEMU: the `KVM_SET_IDENTITY_MAP_ADDR` in `kvm_arch_init()`, at 0xfeffc000.
    public func setIdentityMapAddress(_ address: UInt64) throws(SystemError) {
        var value = address
        try KVMIoctl.call(fileDescriptor, CKVM_SET_IDENTITY_MAP_ADDR, "KVM_SET_IDENTITY_MAP_ADDR",
                          "addr=\(hex(address))", value: &value)
    }

    /// `KVM_CREATE_VCPU` plus the `kvm_run` mapping (and, with the first vCPU, the VM's
    /// coalesced ring). Create vCPUs after `createIrqchip`. QEMU: `kvm_init_vcpu()`.
    public func createVCPU(id: UInt32) throws(SystemError) -> VCPU {
        let fd = FileDescriptor(rawValue: try KVMIoctl.call(fileDescriptor, CKVM_CREATE_VCPU, "KVM_CREATE_VCPU",
                                                            "id=\(id)", integer: UInt(id)))
        do throws(SystemError) {
            let run = try MappedMemory(fileDescriptor: fd, length: system.vcpuMmapSize, operation: "mmap kvm_run")
            let ringPage = system.checkExtension(KVMCapability.coalescedMMIO)
            let ring = ringPage > 0 ? CoalescedMMIORing(run: run, pageOffset: ringPage) : nil
            if let ring { ringStorage.withLock { if $0 == nil { $0 = ring } } }
            return VCPU(id: id, fileDescriptor: fd, run: run, vm: self, coalescedRing: ring)
        } catch {
            try? fd.close()
            throw error
        }
    }
}
