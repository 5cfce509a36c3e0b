import KVM
import KVMAccel
import Logging
import Memory

/// What every machine here is built on, the same way for each: /dev/kvm and one VM with QEMU's
/// x86 KVM setup (identity-map and TSS pages at 0xfeffc000/0xfeffd000), optionally the in-kernel
/// irqchip and PIT, the "system" and "io" roots with their address spaces, and the KVM
/// accelerator that becomes a listener on both when `attach` is called (after the machine's
/// devices, so their ioeventfds replay in one go). QEMU: kvm_init() + kvm_arch_init() and the
/// system memory / io roots of memory_map_init().
public final class MachineCore: Sendable {
    /// /dev/kvm (or `VMM_KVM_DEVICE`).
    public let kvm: KVMSystem
    /// The VM.
    public let vm: VirtualMachine
    /// The KVM accelerator: a memory listener once `attach()` is called.
    public let accelerator: KVMAccelerator
    /// The memory system both address spaces belong to (transactions, listeners).
    public let memorySystem: MemorySystem
    /// QEMU's "system" (2^64 bytes) and "io" (64 KiB) roots.
    public let systemRoot: MemoryRegion
    /// QEMU's "io" root (64 KiB of ports).
    public let ioRoot: MemoryRegion
    /// The guest-physical address space ("memory") over `systemRoot`. QEMU: address_space_memory.
    public let memory: AddressSpace
    /// The port I/O address space ("I/O") over `ioRoot`. QEMU: address_space_io.
    public let io: AddressSpace
    /// What KVM_GET_SUPPORTED_CPUID reported.
    public let supportedCPUID: [CPUIDEntry]

    /// Opens /dev/kvm and creates the VM and the two roots; nothing is mapped until `attach()`.
    /// - Parameters:
    ///   - memorySystem: whose transactions and listeners the address spaces use.
    ///   - irqchip: create the in-kernel PIC/IOAPIC/LAPIC.
    ///   - pit: create the in-kernel PIT as well.
    ///   - logger: the accelerator's logger.
    /// - Throws: `MachineError` when /dev/kvm cannot be opened (one line saying what access
    ///   vmm needs); `SystemError` naming the ioctl that failed otherwise.
    public init(memorySystem: MemorySystem = MemorySystem(), irqchip: Bool = false, pit: Bool = false,
                logger: Logger = Logger(label: "vmm.machine")) throws {
        kvm = try KVMDevice.open()
        vm = try kvm.createVM()
        // QEMU: kvm_arch_init() → kvm_vm_set_identity_map_addr / kvm_vm_set_tss_addr.
        try vm.setIdentityMapAddress(PCMemoryLayout.kvmIdentityMap)
        try vm.setTSSAddress(PCMemoryLayout.kvmTSS)
        supportedCPUID = try kvm.supportedCPUID()
        if irqchip { try vm.createIrqchip() }
        if pit { try vm.createPIT2() }
        self.memorySystem = memorySystem
        systemRoot = .container(name: "system", size: UInt128(1) << 64)
        ioRoot = .ioRoot()
        memory = AddressSpace(root: systemRoot, name: "memory", system: memorySystem)
        io = AddressSpace(root: ioRoot, name: "I/O", system: memorySystem)
        accelerator = KVMAccelerator(vm: vm, logger: logger)
    }

    /// The accelerator starts listening: RAM becomes memory slots, ioeventfds KVM_IOEVENTFDs.
    /// Call it once, after the first devices are in place; later topology changes reach KVM
    /// through the listener as they commit. QEMU: kvm_memory_listener_register().
    public func attach() { accelerator.attach(memory: memory, io: io) }

    /// Whether the host CPU is AMD ("AuthenticAMD": QEMU reserves the HyperTransport hole).
    var amdHost: Bool { supportedCPUID.first { $0.function == 0 }?.ebx == 0x6874_7541 }

    /// Creates vCPU `id` with `cpuid` (default: what KVM supports; KVM's list again if the
    /// policy is refused) and a runner for it on the machine's address spaces.
    public func createVCPU(id: Int, cpuid: [CPUIDEntry]? = nil,
                           logger: Logger = Logger(label: "vmm.vcpu")) throws -> VCPURunner {
        let cpuid = cpuid ?? supportedCPUID
        let vcpu = try vm.createVCPU(id: UInt32(id))
        VCPUSetup.setCPUID(vcpu, policy: cpuid, fallback: supportedCPUID, logger: logger)
        return VCPURunner(vcpu: vcpu, memory: memory, io: io, logger: logger)
    }
}
