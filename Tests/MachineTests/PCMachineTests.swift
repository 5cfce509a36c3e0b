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

    /// The guest-physical memory map is QEMU's: `info mtree -f`'s flat view of "memory" under
    /// both VMMs with the same command line, taken once the kernel runs (SeaBIOS has placed the
    /// BARs by then), compared line by line. What vmm lacks is listed and explained.
    @Test(.enabled(if: Harness.qemuPath != nil, "qemu-system-x86_64 not installed (apt-get install qemu-system-x86)"))
    func layoutMatchesQEMU() throws {
        let flags = ["-machine", "accel=kvm", "-nodefaults", "-display", "none",
                     "-device", "isa-debug-exit,iobase=0xf4,iosize=0x4", "-device", "pci-testdev", "-device", "pc-testdev",
                     "-kernel", try GuestKernels.path("hello"), "-append", "hold"]
        func flatMemory(_ executable: String) throws -> [String] {
            let run = try MonitorRun(executable: executable, arguments: flags)
            #expect(run.waitForSerial("holding\n"), "\(executable): \(run.serial)\n\(run.output)")
            let view = MonitorRun.flatView("memory", in: run.command("info mtree -f"))
            #expect(run.quit() == 0, "\(executable) did not quit: \(run.output)")
            #expect(!view.isEmpty, "\(executable): no flat view of memory in \(run.output)")
            return view
        }
        let vmm = try flatMemory(try #require(Harness.vmmPath))
        let qemu = try flatMemory(try #require(Harness.qemuPath))
        try OutputComparison.expectSame(vmm: vmm, qemu: qemu, differences: [
            .deliberate(vmm: #"  0000000000000000-00000000000dffff \(prio 0, ram\): pc.ram|  00000000000e0000-00000000000fffff \(prio 0, rom\): pc.bios @0000000000020000"#,
                        qemu: #"  0000000000000000-00000000000[0-9a-f]{5} \(prio 0, ram\): pc.ram|  00000000000[c-f][0-9a-f]{4}-00000000000[c-f][0-9a-f]{4} \(prio 0, (ram|rom)\): pc.ram @00000000000[c-f][0-9a-f]{4}"#,
                        "no firmware: vmm maps RAM to 0xdffff and the BIOS ROM at 0xe0000-0xfffff as QEMU does at reset; SeaBIOS then shadows 0xc0000-0xfffff in RAM through the PAM registers, read-only where its option ROMs and itself live"),
            .deliberate(qemu: #"  00000000fec00000-00000000fec00fff \(prio 0, i/o\): kvm-ioapic|  00000000fee00000-00000000feefffff \(prio 4096, i/o\): kvm-apic-msi"#,
                        "the in-kernel IOAPIC and LAPIC/MSI windows are decoded by KVM alone; QEMU also keeps userspace regions for them"),
            .deliberate(qemu: #"  00000000fed00000-00000000fed003ff \(prio 0, i/o\): hpet"#, "vmm has no HPET"),
        ])
    }

    /// ROM is a read-only KVM memory slot where the host supports one; without
    /// KVM_CAP_READONLY_MEM it is no slot at all (reads and writes exit and are served, writes
    /// dropped), never a writable slot.
    @Test func biosIsReadOnlyMemory() throws {
        let m = try machine()
        let flat = m.memory.currentMap.ranges.map { "\(String($0.start, radix: 16)) \($0.region.name)" }
        #expect(flat.contains("0 pc.ram") && flat.contains("e0000 pc.bios"))
        #expect(m.accelerator.memorySlots.contains { $0.guestAddress == 0 && !$0.readOnly })
        if m.accelerator.readOnlyMemory {
            #expect(m.accelerator.memorySlots.contains { $0.guestAddress == 0xe0000 && $0.readOnly })
        } else {
            #expect(!m.accelerator.memorySlots.contains { $0.guestAddress == 0xe0000 })
        }
        #expect(!m.accelerator.memorySlots.contains { $0.guestAddress <= 0xe0000 && 0xe0000 < $0.guestAddress + $0.size && !$0.readOnly })
    }
}
