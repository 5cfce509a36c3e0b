import Devices
import Foundation
import Memory
import Testing
import VirtIO
import VMMSys
@testable import Machine

/// virtio-rng-pci end to end: the guest kicks through the notify ioeventfd, the I/O thread
/// fills the buffer, the completion comes back as an MSI-X interrupt through an irqfd. Neither
/// the doorbells nor the interrupts exit to userspace.
@Suite(.enabled(if: Harness.kvmAvailable, "requires read/write access to /dev/kvm"),
       .enabled(if: GuestKernels.toolchainAvailable, "needs gcc, as and ld to build the test kernels"))
struct VirtIOMachineTests {
    @Test func requestsCompleteWithoutExits() throws {
        var c = MachineConfiguration()
        c.kernel = try GuestKernels.path("virtiorng")
        c.append = "requests=300"
        c.devices = try ["isa-serial", "isa-debug-exit,iobase=0xf4,iosize=0x4", "virtio-rng-pci"].map(MachineConfiguration.device)
        let serial = CapturingSerialBackend()
        let m = try PCMachine(c, serial: serial, memorySystem: MemorySystem())
        let status = m.run()
        let text = serial.text
        #expect(status == 1, "\(text)")
        #expect(text.contains("requests 300 used 300 interrupts 300"), "\(text)")
        let dev = try #require(m.devices.pci.host.device(slot: 2) as? VirtIOPCI)
        // No kick reached the notify region's callback: all 300 went through the ioeventfd.
        let notify = dev.modernRegion.subregions.first { $0.name == "virtio-pci-notify" }
        #expect(notify?.dispatchCounts.writes == 0)
        #expect(m.accelerator.ioeventfdCounts.refused == 0)
        // Setup (capabilities, common config, MSI-X table) exits; 300 requests do not add any.
        let mmioExits = m.runners[0].counters.mmio
        #expect(mmioExits < 100, "\(mmioExits) MMIO exits for 300 requests")
    }
}
