import CKVM
import Foundation
import TestSupport
import Testing
import VMMSys
@testable import KVM

@Suite(.enabled(if: TestHost.kvmAvailable, "requires read/write /dev/kvm"))
struct VCPUStateTests {
    @Test func registersRoundTrip() throws {
        let guest = try RealModeGuest(code: [0xF4])
        var regs = Registers()
        regs.rax = 0x1111; regs.rbx = 0x2222; regs.r15 = 0xF15; regs.rsp = 0x8000
        regs.rip = 0x10; regs.rflags = 0x2
        try guest.vcpu.setRegisters(regs)
        #expect(try guest.vcpu.getRegisters() == regs)

        var sregs = try guest.vcpu.getSpecialRegisters()
        sregs.ds.base = 0x3000
        sregs.ds.selector = 0x300
        try guest.vcpu.setSpecialRegisters(sregs)
        let back = try guest.vcpu.getSpecialRegisters()
        #expect(back.ds.base == 0x3000)
        #expect(back.ds.selector == 0x300)
        #expect(back.cs.base == 0)
    }

    /// KVM_SET_FPU / KVM_GET_FPU round-trip the control words.
    @Test func fpuControlWords() throws {
        let guest = try RealModeGuest(code: [0xF4])
        var fpu = FPUState()
        fpu.fcw = 0x27F
        fpu.mxcsr = 0x9F80
        try guest.vcpu.setFPU(fpu)
        let back = try guest.vcpu.getFPU()
        #expect(back.fcw == 0x27F)
        // Under kvm_pvm (a KVM that emulates guest supervisor code; seen on 6.18) KVM_GET_FPU
        // may report MXCSR 0 even right after creation (reset value 0x1f80). Only there is the
        // read-back a known issue; on every other KVM it must round-trip.
        if TestHost.isKVMPVM {
            withKnownIssue("kvm_pvm's KVM_GET_FPU may report MXCSR 0", isIntermittent: true) {
                #expect(back.mxcsr == 0x9F80)
            }
        } else {
            #expect(back.mxcsr == 0x9F80)
        }
    }

    @Test func cpuidAndMSRs() throws {
        let guest = try RealModeGuest(code: [0xF4])
        try guest.vcpu.setCPUID(try guest.system.supportedCPUID())
        let sysenterCS: UInt32 = 0x174
        #expect(try guest.vcpu.setMSRs([(sysenterCS, 0x10)]) == 1)
        let read = try guest.vcpu.getMSRs([sysenterCS])
        #expect(read.count == 1)
        #expect(read.first?.value == 0x10)
        // An MSR that does not exist is refused: the count stops before it.
        #expect(try guest.vcpu.setMSRs([(sysenterCS, 0x20), (0xDEAD_BEEF, 1)]) == 1)
    }

    @Test func mpStateAndLAPIC() throws {
        let guest = try RealModeGuest(code: [0xF4], irqchip: true)
        #expect(try guest.vcpu.getMPState() == .runnable)
        try guest.vcpu.setMPState(.halted)
        #expect(try guest.vcpu.getMPState() == .halted)
        try guest.vcpu.setMPState(.runnable)
        var lapic = try guest.vcpu.getLAPIC()
        #expect(lapic.count == 1024)
        lapic[0x80] = 0x20  // TPR
        try guest.vcpu.setLAPIC(lapic)
        #expect(try guest.vcpu.getLAPIC()[0x80] == 0x20)
        #expect(throws: SystemError.self) { try guest.vcpu.setLAPIC([0]) }
    }
}
