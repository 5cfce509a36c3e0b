import KVM
import Logging
import Memory
import Synchronization
import VMMSys
@testable import KVMAccel

/// A one-vCPU VM built by hand for the accelerator tests, so each test picks the accelerator's
/// options (manual dirty-log protection, slot budget) and its guest code: 1 MiB of RAM at 0
/// ("low": GDT at 0x500, code at 0x1000, data at 0x2000, stack below 0x8000, page tables at
/// 0x9000), the "system" and "io" roots, and the accelerator attached before any test region
/// exists (so every region a test adds reaches KVM as a topology change). Guest code runs in
/// 64-bit long mode with the low 4 GiB identity-mapped, until HLT.
final class TinyVM {
    static let codeAddress: UInt64 = 0x1000
    static let dataAddress: UInt64 = 0x2000

    let system = MemorySystem()
    let kvm: KVMSystem
    let vm: VirtualMachine
    let root = MemoryRegion.container(name: "system", size: UInt128(1) << 64)
    let ioRoot = MemoryRegion.ioRoot()
    let memory: AddressSpace
    let io: AddressSpace
    let low: MemoryRegion
    let accelerator: KVMAccelerator
    let runner: VCPURunner

    init(memorySlotLimit: Int? = nil, manualDirtyLogProtection: Bool = true) throws {
        kvm = try KVMSystem()
        vm = try kvm.createVM()
        try vm.setIdentityMapAddress(0xfeff_c000)
        try vm.setTSSAddress(0xfeff_d000)
        memory = AddressSpace(root: root, name: "memory", system: system)
        io = AddressSpace(root: ioRoot, name: "I/O", system: system)
        low = try MemoryRegion.ram(name: "low", size: 1 << 20)
        root.addSubregion(low, at: 0)
        accelerator = KVMAccelerator(vm: vm, logger: Logger(label: "test.kvm"), memorySlotLimit: memorySlotLimit,
                                     manualDirtyLogProtection: manualDirtyLogProtection)
        accelerator.attach(memory: memory, io: io)
        let vcpu = try vm.createVCPU(id: 0)
        try vcpu.setCPUID(try kvm.supportedCPUID())
        runner = VCPURunner(vcpu: vcpu, memory: memory, io: io, logger: Logger(label: "test.vcpu"))
    }

    /// Loads `code` at `codeAddress` (and `data` at `dataAddress`) through the loader's
    /// accessor, enters long mode there with the given registers, and runs until the vCPU stops.
    @discardableResult
    func run(_ code: [UInt8], data: [UInt8] = [], rax: UInt64 = 0, rbx: UInt64 = 0, rcx: UInt64 = 0, rdx: UInt64 = 0,
             rsi: UInt64 = 0) throws -> VCPUStopReason {
        try prepare(code, data: data, rax: rax, rbx: rbx, rcx: rcx, rdx: rdx, rsi: rsi)
        return runner.run()
    }

    /// `run` without running.
    func prepare(_ code: [UInt8], data: [UInt8] = [], rax: UInt64 = 0, rbx: UInt64 = 0, rcx: UInt64 = 0, rdx: UInt64 = 0,
                 rsi: UInt64 = 0) throws {
        let loader = memory.guestMemory
        try loader.write(code, at: Self.codeAddress)
        if !data.isEmpty { try loader.write(data, at: Self.dataAddress) }
        try X86Boot.enterLongMode(runner.vcpu, memory: loader, pageTables: 0x9000, entry: Self.codeAddress, stack: 0x8000)
        var r = try runner.vcpu.getRegisters()
        r.rax = rax; r.rbx = rbx; r.rcx = rcx; r.rdx = rdx; r.rsi = rsi
        try runner.vcpu.setRegisters(r)
    }

    /// The slot mapping guest address `gpa`, if any.
    func slot(at gpa: UInt64) -> MemorySlots.Slot? {
        accelerator.memorySlots.first { $0.guestAddress <= gpa && gpa - $0.guestAddress < $0.size }
    }
}

/// Hand-assembled x86-64 routines (each ends in HLT, which exits: there is no irqchip).
enum GuestCode {
    /// Stores EAX at every address of the zero-terminated table of 64-bit addresses at RSI:
    ///     1: mov rdx,[rsi]; test rdx,rdx; jz 2f; mov [rdx],eax; add rsi,8; jmp 1b; 2: hlt
    static let storeToEachAddress: [UInt8] = [
        0x48, 0x8b, 0x16, 0x48, 0x85, 0xd2, 0x74, 0x08, 0x89, 0x02, 0x48, 0x83, 0xc6, 0x08, 0xeb, 0xf0, 0xf4,
    ]

    /// ECX times: store EAX at [RBX], then EAX += 1; then HLT. (ECX ≥ 1.)
    ///     1: mov [rbx],eax; inc eax; dec ecx; jnz 1b; hlt
    static let countingStores: [UInt8] = [0x89, 0x03, 0xff, 0xc0, 0xff, 0xc9, 0x75, 0xf8, 0xf4]

    /// `countingStores`, then OUT of EAX (now the count) to port DX, then HLT.
    static let countingStoresThenOut: [UInt8] = [0x89, 0x03, 0xff, 0xc0, 0xff, 0xc9, 0x75, 0xf8, 0xef, 0xf4]

    /// ECX times: OUT of EAX to port DX, then EAX += 1; then a store of EAX at [RBX]; HLT.
    ///     1: out dx,eax; inc eax; dec ecx; jnz 1b; mov [rbx],eax; hlt
    static let countingOutsThenStore: [UInt8] = [0xef, 0xff, 0xc0, 0xff, 0xc9, 0x75, 0xf9, 0x89, 0x03, 0xf4]

    /// The table `storeToEachAddress` reads: the addresses, then 0.
    static func addressTable(_ addresses: [UInt64]) -> [UInt8] {
        (addresses + [0]).flatMap { a in (0..<8).map { UInt8(truncatingIfNeeded: a >> (8 * UInt64($0))) } }
    }
}

/// A device that records every write it receives, in order, into a log shared with others.
final class WriteLog: Sendable {
    let entries = Mutex<[String]>([])

    func ops(_ name: String) -> MemoryRegionOps {
        MemoryRegionOps(
            read: { _, _ in 0 },
            write: { [self] offset, value, size in entries.withLock { $0.append("\(name)+\(offset):\(value)/\(size)") } },
            valid: AccessConstraints(minAccessSize: 1, maxAccessSize: 8, unaligned: true),
            implementation: AccessConstraints(minAccessSize: 1, maxAccessSize: 8, unaligned: true))
    }

    var all: [String] { entries.withLock { $0 } }
}
