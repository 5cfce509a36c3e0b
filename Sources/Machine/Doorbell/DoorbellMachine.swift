import KVM
import KVMAccel
import Logging
import Memory
import Synchronization
import VMMSys

/// A minimal VM for exercising the doorbell paths: 2 MiB of RAM, the doorbell guest at
/// 0x1000 in long mode, a doorbell device at I/O port 0x6000 and at MMIO 0xd000_0000, and
/// the KVM accelerator listening on both address spaces. Everything is wired through the
/// memory API; the device side adds and removes ioeventfds with `addEventfd`/`delEventfd`.
package final class DoorbellMachine: Sendable {
    /// A routine of the doorbell guest (its offset from the load address).
    package enum Routine: UInt64, Sendable {
        case pio8 = 0x000, pio16 = 0x020, pio32 = 0x040
        case mmio8 = 0x060, mmio16 = 0x080, mmio32 = 0x0a0, mmio64 = 0x0c0
        case outs = 0x0e0, ins = 0x100, ramReadWrite = 0x120, load32 = 0x140, in32 = 0x160
        case interrupts = 0x180
    }

    package static let loadAddress: UInt64 = 0x1000
    package static let ramSize: UInt64 = 2 << 20
    package static let doorbellPort: UInt64 = 0x6000
    package static let doorbellMMIO: UInt64 = 0xd000_0000
    package static let reportPort: UInt64 = 0x6100

    /// KVM, the VM, the memory roots and the accelerator, as every machine here has them.
    package let core: MachineCore
    package var kvm: KVMSystem { core.kvm }
    package var vm: VirtualMachine { core.vm }
    package var accelerator: KVMAccelerator { core.accelerator }
    package var memorySystem: MemorySystem { core.memorySystem }
    package var memory: AddressSpace { core.memory }
    package var io: AddressSpace { core.io }
    package let ram: MemoryRegion
    /// The doorbell register blocks (8 bytes of ports, 4 KiB of MMIO).
    package let pioDoorbell: MemoryRegion
    package let mmioDoorbell: MemoryRegion
    /// The port the guest reports values on.
    package let reportRegion: MemoryRegion
    package let runners: [VCPURunner]

    /// What the doorbell device saw.
    package let device = DeviceState()

    /// The doorbell device's state, shared with its callbacks.
    package final class DeviceState: Sendable {
        /// Writes that reached the doorbell device's callback, and the last value written.
        package let writes = Atomic<UInt64>(0)
        package let lastValue = Atomic<UInt64>(0)
        /// Values the guest reported on `reportPort`; and the value `in` from it returns.
        package let reports = Mutex<[UInt64]>([])
        package let inValue = Atomic<UInt64>(0)
    }

    /// Creates the VM. `irqchip` adds the in-kernel PIC/IOAPIC/LAPIC (for interrupt tests;
    /// HLT then no longer exits).
    package init(vcpus: Int = 1, irqchip: Bool = false, memorySystem: MemorySystem = MemorySystem()) throws {
        let core = try MachineCore(memorySystem: memorySystem, irqchip: irqchip, logger: Logger(label: "vmm.doorbell"))
        self.core = core
        let memRoot = core.systemRoot, ioRoot = core.ioRoot
        ram = try MemoryRegion.ram(name: "doorbell.ram", size: Self.ramSize)
        memRoot.addSubregion(ram, at: 0)
        let state = device
        let doorbellOps = MemoryRegionOps(
            read: { _, _ in 0 },
            write: { _, value, _ in
                state.writes.add(1, ordering: .relaxed)
                state.lastValue.store(value, ordering: .relaxed)
            },
            valid: AccessConstraints(minAccessSize: 1, maxAccessSize: 8, unaligned: false),
            implementation: AccessConstraints(minAccessSize: 1, maxAccessSize: 8, unaligned: false))
        pioDoorbell = MemoryRegion.io(name: "doorbell-pio", size: 8, ops: doorbellOps)
        mmioDoorbell = MemoryRegion.io(name: "doorbell-mmio", size: 0x1000, ops: doorbellOps)
        reportRegion = MemoryRegion.io(name: "report", size: 4, ops: MemoryRegionOps(
            read: { _, _ in state.inValue.load(ordering: .relaxed) },
            write: { _, value, _ in state.reports.withLock { $0.append(value) } }))
        ioRoot.addSubregion(pioDoorbell, at: Self.doorbellPort)
        ioRoot.addSubregion(reportRegion, at: Self.reportPort)
        memRoot.addSubregion(mmioDoorbell, at: Self.doorbellMMIO)
        core.attach()
        try core.memory.guestMemory.write(doorbellGuestImage, at: Self.loadAddress)
        var runners: [VCPURunner] = []
        for id in 0..<vcpus {
            let runner = try core.createVCPU(id: id, cpuid: core.supportedCPUID, logger: Logger(label: "vmm.vcpu"))
            if irqchip { try VCPUSetup.resetLocalAPIC(runner.vcpu, bsp: id == 0, softwareEnable: true) }
            runners.append(runner)
        }
        self.runners = runners
    }

    /// Puts vCPU `index` in long mode at `routine` with the given argument registers.
    package func prepare(_ routine: Routine, vcpu index: Int = 0, rax: UInt64 = 0, rcx: UInt64 = 1, rdx: UInt64 = 0,
                        rbx: UInt64 = 0, rsi: UInt64 = 0, rdi: UInt64 = 0) throws {
        let vcpu = runners[index].vcpu
        try X86Boot.enterLongMode(vcpu, memory: memory.guestMemory, pageTables: 0x9000,
                                  entry: Self.loadAddress + routine.rawValue, stack: 0x8000 - 0x100 * UInt64(index))
        var r = try vcpu.getRegisters()
        r.rax = rax; r.rcx = rcx; r.rdx = rdx; r.rbx = rbx; r.rsi = rsi; r.rdi = rdi
        try vcpu.setRegisters(r)
    }

    /// Runs vCPU `index` at `routine` on the calling thread until it stops.
    @discardableResult
    package func run(_ routine: Routine, vcpu index: Int = 0, rax: UInt64 = 0, rcx: UInt64 = 1, rdx: UInt64 = 0,
                    rbx: UInt64 = 0, rsi: UInt64 = 0, rdi: UInt64 = 0) throws -> VCPUStopReason {
        try prepare(routine, vcpu: index, rax: rax, rcx: rcx, rdx: rdx, rbx: rbx, rsi: rsi, rdi: rdi)
        return runners[index].run()
    }
}
