import Testing
import VMMSys
@testable import KVM

/// A one-vCPU VM with 64 KiB of RAM at guest physical 0, running 16-bit real-mode `code`
/// from 0000:0000. Test programs are hand-assembled byte arrays.
final class RealModeGuest {
    let system: KVMSystem
    let vm: VirtualMachine
    let ram: MappedMemory
    let vcpu: VCPU

    init(code: [UInt8], data: [Int: [UInt8]] = [:], irqchip: Bool = false) throws {
        system = try KVMSystem()
        vm = try system.createVM()
        try vm.setTSSAddress(0xfffb_d000)
        if irqchip { try vm.createIrqchip() }
        ram = try MappedMemory(anonymous: 0x10000)
        RealModeGuest.poke(ram, 0, code)
        for (address, bytes) in data { RealModeGuest.poke(ram, address, bytes) }
        try vm.setUserMemoryRegion(slot: 0, guestPhysicalAddress: 0, size: UInt64(ram.length),
                                   hostAddress: ram.hostAddress)
        vcpu = try vm.createVCPU(id: 0)
        var sregs = try vcpu.getSpecialRegisters()
        sregs.cs.base = 0
        sregs.cs.selector = 0
        try vcpu.setSpecialRegisters(sregs)
        var regs = Registers()
        regs.rip = 0
        regs.rflags = 0x2
        try vcpu.setRegisters(regs)
    }

    func poke(_ address: Int, _ bytes: [UInt8]) { RealModeGuest.poke(ram, address, bytes) }

    static func poke(_ ram: MappedMemory, _ address: Int, _ bytes: [UInt8]) {
        precondition(address + bytes.count <= ram.length)
        bytes.withUnsafeBytes { (ram.base + address).copyMemory(from: $0.baseAddress!, byteCount: $0.count) }
    }

    func peek(_ address: Int, _ count: Int) -> [UInt8] {
        Array(UnsafeRawBufferPointer(start: ram.base + address, count: count))
    }

    /// Runs until `.hlt` (included in the result), letting `respond` complete reads.
    /// Fails the test on anything that is not a normal exit, and after `limit` exits.
    func runUntilHalt(limit: Int = 200, respond: (VCPUExit) throws -> Void = { _ in }) throws -> [VCPUExit] {
        var exits: [VCPUExit] = []
        for _ in 0..<limit {
            let exit = try vcpu.run()
            exits.append(exit)
            switch exit {
            case .hlt: return exits
            case .shutdown, .internalError, .failEntry, .unknown:
                Issue.record("unexpected exit \(exit) after \(exits.dropLast()) regs=\(String(describing: try? vcpu.getRegisters()))")
                return exits
            default: try respond(exit)
            }
        }
        Issue.record("no hlt within \(limit) exits: \(exits.suffix(5))")
        return exits
    }
}
