import Devices
import Foundation
import KVMAccel
import Memory
import Testing
import VMMSys
@testable import Machine

/// The pc machine built in-process, driven through its address spaces as a guest would.
@Suite(.enabled(if: Harness.kvmAvailable, "requires read/write access to /dev/kvm"),
       .enabled(if: GuestKernels.toolchainAvailable, "needs gcc, as and ld to build the test kernels"))
struct PCMachineTests {
    func machine() throws -> PCMachine {
        var c = MachineConfiguration()
        c.kernel = try GuestKernels.path("hello")
        c.devices = try ["isa-debug-exit,iobase=0xf4,iosize=0x4", "pci-testdev", "pc-testdev"].map(MachineConfiguration.device)
        return try PCMachine(c, memorySystem: MemorySystem())
    }

    /// Switching pci-testdev tests through the guest's view of its BAR is exactly one
    /// KVM_IOEVENTFD deassign and one assign; the kernel then takes the doorbells.
    @Test func switchingTestsIsOneDeassignAndOneAssign() throws {
        let m = try machine()
        let dev = try #require(m.devices.first(PCITestDev.self))
        let bar0 = try #require(dev.barAddress(0))
        let before = m.accelerator.ioeventfdCounts
        m.memory.write(bar0, value: 1, size: 1)              // mmio-wildcard-eventfd
        let mid = m.accelerator.ioeventfdCounts
        #expect(mid.assigned == before.assigned + 1 && mid.deassigned == before.deassigned)
        m.memory.write(bar0, value: 2, size: 1)              // mmio-datamatch-eventfd
        let after = m.accelerator.ioeventfdCounts
        #expect(after.assigned == mid.assigned + 1 && after.deassigned == mid.deassigned + 1)
        #expect(after.refused == 0)
        #expect(m.memory.ioeventfds.count == 1 && m.memory.ioeventfds[0].start == bar0 + 2050)
    }

    /// Turning memory decode off unmaps BAR0 and with it its ioeventfd (one deassign); on
    /// again, one assign.
    @Test func decodeOffTakesTheIoeventfdAlong() throws {
        let m = try machine()
        let dev = try #require(m.devices.first(PCITestDev.self))
        let bar0 = try #require(dev.barAddress(0))
        m.memory.write(bar0, value: 2, size: 1)
        let slotAddress: UInt64 = 0x8000_0000 | 2 << 11 | 0x04     // 00:02.0 command
        m.io.write(0xcf8, value: slotAddress, size: 4)
        let command = m.io.read(0xcfc, size: 2).value
        let before = m.accelerator.ioeventfdCounts
        m.io.write(0xcfc, value: command & ~2, size: 2)
        #expect(m.accelerator.ioeventfdCounts.deassigned == before.deassigned + 1)
        #expect(m.memory.read(bar0, size: 1).result == .decodeError)
        m.io.write(0xcfc, value: command, size: 2)
        #expect(m.accelerator.ioeventfdCounts.assigned == before.assigned + 1)
        #expect(m.memory.read(bar0, size: 1).value == 2)        // header byte 0: the test index
    }

    @Test func layoutMatchesQEMU() throws {
        let m = try machine()
        let flat = m.memory.currentMap.ranges.map { "\(String($0.start, radix: 16)) \($0.region.name)" }
        #expect(flat.contains("0 pc.ram"))
        #expect(flat.contains("e0000 pc.bios"))
        #expect(m.accelerator.memorySlots.contains { $0.guestAddress == 0 && !$0.readOnly })
        #expect(m.accelerator.memorySlots.contains { $0.guestAddress == 0xe0000 && $0.readOnly } || !m.accelerator.readOnlyMemory)
    }
}
