import CKVM
import Foundation
import TestSupport
import Testing
import VMMSys
@testable import KVM

@Suite(.enabled(if: TestHost.kvmAvailable, "requires read/write /dev/kvm"))
struct SystemTests {
    @Test func apiVersionAndExtensions() throws {
        let kvm = try KVMSystem()
        #expect(kvm.apiVersion == 12)
        #expect(kvm.vcpuMmapSize >= 4096)
        #expect(kvm.checkExtension(KVM_CAP_IOEVENTFD) > 0)
        #expect(kvm.checkExtension(KVM_CAP_IRQFD) > 0)
        #expect(kvm.checkExtension(KVM_CAP_USER_MEMORY) > 0)
        #expect(kvm.checkExtension(-1) == 0)
    }

    @Test func supportedCPUIDHasVendorLeaf() throws {
        let entries = try KVMSystem().supportedCPUID()
        let leaf0 = try #require(entries.first { $0.function == 0 })
        #expect(leaf0.eax >= 1)
        #expect(entries.contains { $0.function == 1 })
    }

    @Test func msrIndexListIncludesSysenter() throws {
        let indices = try KVMSystem().msrIndexList()
        #expect(indices.contains(0x174))
    }

    @Test func memoryRegionErrorNamesIoctl() throws {
        let vm = try KVMSystem().createVM()
        // Unaligned guest address: EINVAL.
        #expect {
            try vm.setUserMemoryRegion(slot: 0, guestPhysicalAddress: 0x123, size: 0x1000, hostAddress: 0x1000)
        } throws: { error in
            guard let e = error as? SystemError else { return false }
            return e.operation == "KVM_SET_USER_MEMORY_REGION" && e.errno == EINVAL
                && e.arguments.contains("gpa=0x123")
        }
    }

    @Test func interruptPlumbing() throws {
        let vm = try KVMSystem().createVM()
        try vm.createIrqchip()
        try vm.createPIT2()
        try vm.setGSIRouting([
            .irqchip(gsi: 4, chip: 0, pin: 4),
            .irqchip(gsi: 4, chip: 2, pin: 4),
            .msi(gsi: 24, addressLo: 0xfee0_0000, addressHi: 0, data: 0x41),
        ])
        let notifier = try EventNotifier()
        try vm.irqfd(notifier: notifier, gsi: 24)
        try vm.irqfd(notifier: notifier, gsi: 24, deassign: true)
        let resample = try EventNotifier()
        try vm.irqfd(notifier: notifier, gsi: 4, resample: resample)
        try vm.irqfd(notifier: notifier, gsi: 4, deassign: true)
        try vm.irqLine(irq: 4, level: true)
        try vm.irqLine(irq: 4, level: false)
        _ = try vm.createVCPU(id: 0)
        _ = try vm.signalMSI(address: 0xfee0_0000, data: 0x41)
    }
}
