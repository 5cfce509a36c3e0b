import KVM
import Memory
import Synchronization
import Testing
import TestSupport
@testable import KVMAccel

/// What a paused vCPU looks like to whoever changes it while it is parked (a machine reset
/// rewriting its registers, a monitor reading them).
@Suite(.enabled(if: TestHost.kvmAvailable, "requires read/write access to /dev/kvm"))
struct VCPUParkingTests {
    /// A pause that arrives while a port read is being served parks the vCPU with that `in`
    /// finished: AL holds what the device returned and RIP is past the instruction, as in QEMU,
    /// whose `kvm_cpu_exec()` returns only once KVM_RUN has come back with EINTR. Registers set
    /// while it is parked are then the ones it resumes with. (Before, the kernel finished the
    /// old `in` at resume, on top of the new registers: the vCPU went on after the old
    /// instruction, which is how a QMP system_reset could be followed by guest resets.)
    @Test func registersSetWhileParkedAfterAPortReadAreTheOnesItResumesWith() throws {
        let t = try TinyVM()
        let writes = WriteLog()
        let runner = t.runner
        let ports = MemoryRegion.io(name: "ports", size: 4, ops: MemoryRegionOps(
            read: { _, _ in runner.pause(); return 0xAB },  // the pause arrives mid-exit
            write: writes.ops("ports").write))
        t.ioRoot.addSubregion(ports, at: 0x10)
        // in al, dx; out 0x11, al; hlt        and at +0x100: mov al, 0x55; out 0x12, al; hlt
        try t.prepare([0xEC, 0xE6, 0x11, 0xF4], rdx: 0x10)
        let other = TinyVM.codeAddress + 0x100
        try t.memory.guestMemory.write([0xB0, 0x55, 0xE6, 0x12, 0xF4], at: other)

        let stopped = Mutex<VCPUStopReason?>(nil)
        runner.start { reason in stopped.withLock { $0 = reason } }
        #expect(pollUntil { runner.isParked && runner.isRunning })
        var registers = try runner.vcpu.getRegisters()
        #expect(registers.rax & 0xFF == 0xAB)
        #expect(registers.rip == TinyVM.codeAddress + 1)

        registers.rip = other
        registers.rax = 0
        try runner.vcpu.setRegisters(registers)
        runner.resume()
        #expect(pollUntil { stopped.withLock { $0 } != nil })
        #expect(stopped.withLock { $0 } == .halted)
        #expect(writes.all == ["ports+2:85/1"])  // the new code's out 0x12, never the old out 0x11
        #expect(runner.counters.portIO == 2)
    }
}
