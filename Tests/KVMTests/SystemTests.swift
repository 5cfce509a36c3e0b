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

    /// Each interrupt ioctl either succeeds or reports KVM's documented refusal, and MSIs are
    /// delivered exactly when a local APIC can accept them (kvm_irq_delivery_to_apic: no
    /// destination is an error, a software-disabled APIC accepts nothing, an enabled one does).
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
        // The same eventfd bound twice: kvm_irqfd_assign refuses with EBUSY.
        #expect { try vm.irqfd(notifier: notifier, gsi: 24) } throws: { error in
            (error as? SystemError).map { $0.operation == "KVM_IRQFD" && $0.errno == EBUSY } ?? false
        }
        try vm.irqfd(notifier: notifier, gsi: 24, deassign: true)
        // Deassigned, it can be bound again (now as a resampling level source).
        let resample = try EventNotifier()
        try vm.irqfd(notifier: notifier, gsi: 4, resample: resample)
        try vm.irqfd(notifier: notifier, gsi: 4, deassign: true)
        try vm.irqLine(irq: 4, level: true)
        try vm.irqLine(irq: 4, level: false)
        // With no vCPU there is no destination: kvm_irq_delivery_to_apic returns -1 (EPERM).
        #expect { try vm.signalMSI(address: 0xfee0_0000, data: 0x41) } throws: { error in
            (error as? SystemError).map { $0.operation == "KVM_SIGNAL_MSI" && $0.errno == EPERM } ?? false
        }
        let vcpu = try vm.createVCPU(id: 0)
        // After reset the APIC is hardware-enabled but software-disabled (SVR bit 8 clear):
        // the MSI finds its destination and is not accepted.
        #expect(try vm.signalMSI(address: 0xfee0_0000, data: 0x41) == false)
        var lapic = try vcpu.getLAPIC()
        lapic[0xf0 + 1] |= 0x01                              // SVR bit 8: APIC software enable
        try vcpu.setLAPIC(lapic)
        #expect(try vm.signalMSI(address: 0xfee0_0000, data: 0x41) == true)
        let irr = try vcpu.getLAPIC()
        // IRR is 8 32-bit registers 16 bytes apart from 0x200; vector 0x41 is bit 1 of IRR2.
        #expect(irr[0x200 + 2 * 16] & 0x02 != 0, "vector 0x41 pending in the IRR")
    }
}
