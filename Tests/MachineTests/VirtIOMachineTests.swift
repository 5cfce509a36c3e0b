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
    struct Run {
        var status: Int32
        var text: String
        var mmioExits: UInt64
        var notifyCallbackWrites: UInt64
        var refusedIoeventfds: Int
    }

    static func run(requests: Int) throws -> Run {
        var c = MachineConfiguration()
        c.kernel = try GuestKernels.path("virtiorng")
        c.append = "requests=\(requests)"
        c.devices = try ["isa-serial", "isa-debug-exit,iobase=0xf4,iosize=0x4", "virtio-rng-pci"].map(MachineConfiguration.device)
        let serial = CapturingSerialBackend()
        let m = try PCMachine(c, serial: serial, memorySystem: MemorySystem())
        let status = m.run()
        let dev = try #require(m.devices.pci.host.device(slot: 2) as? VirtIOPCI)
        let notify = try #require(dev.modernRegion.subregions.first { $0.name == "virtio-pci-notify" })
        return Run(status: status, text: serial.text, mmioExits: UInt64(m.runners[0].counters.mmio),
                   notifyCallbackWrites: UInt64(notify.dispatchCounts.writes), refusedIoeventfds: Int(m.accelerator.ioeventfdCounts.refused))
    }

    /// The MMIO exits of driver setup in Guests/lib/virtio.c plus virtiorng's final reset, one
    /// per access to the device's registers (the LAPIC is in the kernel and exits nowhere):
    /// MSI-X entry 0 (4 writes); virtio_begin (reset write, status read, 2 status writes, 2
    /// feature-select writes, 2 feature reads: 8); virtio_features_ok (4 feature writes, status
    /// write and read, num_queues read: 7); virtio_queue0 (select, size read, enable read, size
    /// write, 6 address writes, vector write and read, config vector write, notify-offset read,
    /// enable write, status write and read: 17); the reset at the end (1).
    static let setupExits: UInt64 = 4 + 8 + 7 + 17 + 1

    @Test func requestsCompleteWithoutExits() throws {
        let one = try Self.run(requests: 1), many = try Self.run(requests: 300)
        #expect(one.status == 1 && many.status == 1, "\(one.text)\n\(many.text)")
        #expect(many.text.contains("requests 300 used 300 interrupts 300"), "\(many.text)")
        // No kick reached the notify region's callback: all went through the ioeventfd.
        #expect(one.notifyCallbackWrites == 0 && many.notifyCallbackWrites == 0)
        #expect(one.refusedIoeventfds == 0 && many.refusedIoeventfds == 0)
        // Setup exits; 299 more requests add none (each is one kick and one interrupt).
        #expect(one.mmioExits == Self.setupExits, "\(one.mmioExits) MMIO exits for setup and 1 request")
        #expect(many.mmioExits == one.mmioExits, "\(many.mmioExits) MMIO exits for 300 requests, \(one.mmioExits) for 1")
    }
}
