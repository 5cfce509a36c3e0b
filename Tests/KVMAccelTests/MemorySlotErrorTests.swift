import KVM
import Memory
import TestSupport
import Testing
import VMMSys
@testable import KVMAccel

/// Guest RAM the kernel refuses to map is a machine error, named and stopping the vCPUs, not a
/// silently unmapped range (whose accesses would exit as MMIO). QEMU: `kvm_set_phys_mem()`
/// prints "error registering slot" and aborts; `kvm_alloc_slot()` "no free slot available".
@Suite(.enabled(if: TestHost.kvmAvailable, "requires read/write access to /dev/kvm"))
struct MemorySlotErrorTests {
    /// More RAM sections than slot numbers: with a budget of 4 (the low RAM takes one), the
    /// fourth extra region has no slot.
    @Test func runningOutOfSlotsIsAMachineError() throws {
        let t = try TinyVM(memorySlotLimit: 4)
        let kernelLimit = t.kvm.checkExtension(KVMCapability.nrMemorySlots)
        for i in 0..<4 {
            let r = try MemoryRegion.ram(name: "r\(i)", size: 0x1000)
            t.root.addSubregion(r, at: 0x4000_0000 + UInt64(i) * 0x2000)
        }
        #expect(t.accelerator.memorySlots.count == 4)
        let expected = "cannot map guest RAM 'r3' at 0x40006000 (0x1000 bytes): no free KVM memory slot "
            + "(4 in use; this accelerator uses at most 4 of KVM_CAP_NR_MEMSLOTS=\(kernelLimit))"
        #expect(t.accelerator.memoryErrors.map(\.description) == [expected])
        #expect(t.accelerator.memoryErrors.first?.cause == .noFreeSlot(inUse: 4, limit: 4, kernelLimit: kernelLimit))
        #expect(throws: t.accelerator.memoryErrors.first!) { try t.accelerator.checkMemory() }
        // The vCPU does not enter the guest: it stops with the reason.
        #expect(t.vm.failure == expected)
        #expect(try t.run([0xf4]) == .failed(expected))
        // Freeing a slot does not make the machine runnable again: the error stands.
        t.root.removeSubregion(t.root.subregions.first { $0.name == "r0" }!)
        #expect(t.vm.failure == expected)
    }

    /// The kernel's own refusal: RAM mapped over a slot someone else registered (EEXIST). The
    /// message names the ioctl, its arguments and the errno.
    @Test func kernelRefusalNamesTheIoctlItsArgumentsAndErrno() throws {
        let t = try TinyVM()
        let foreign = try RAMBlock(size: 0x2000)
        try t.vm.setUserMemoryRegion(slot: 600, guestPhysicalAddress: 0x8000_0000, size: 0x2000, hostAddress: foreign.hostAddress)
        let clash = try MemoryRegion.ram(name: "clash", size: 0x1000)
        t.root.addSubregion(clash, at: 0x8000_1000)
        let error = try #require(t.accelerator.memoryErrors.first)
        guard case .ioctl(let sys) = error.cause else { Issue.record("\(error)"); return }
        #expect(sys.operation == "KVM_SET_USER_MEMORY_REGION" && sys.errnoName == "EEXIST")
        let hva = try #require(clash.ramBlock).hostAddress
        #expect(error.description == "cannot map guest RAM 'clash' at 0x80001000 (0x1000 bytes): "
            + "KVM_SET_USER_MEMORY_REGION(slot=1 flags=0x0 gpa=0x80001000 size=0x1000 hva=0x\(String(hva, radix: 16))) "
            + "failed: EEXIST (17): File exists")
        #expect(t.slot(at: 0x8000_1000) == nil)
        #expect(try t.run([0xf4]) == .failed(error.description))
        try t.vm.setUserMemoryRegion(slot: 600, guestPhysicalAddress: 0x8000_0000, size: 0, hostAddress: foreign.hostAddress)
    }

    /// RAM shown through an alias at an offset that is not page aligned cannot be a slot (the
    /// kernel maps whole host pages; QEMU makes the ioctl, gets EINVAL and aborts): said
    /// before any ioctl, in the region's terms.
    @Test func ramAtAnOddOffsetIsAMachineError() throws {
        let t = try TinyVM()
        let ram = try MemoryRegion.ram(name: "ram", size: 0x10000)
        t.root.addSubregion(MemoryRegion.alias(name: "window", target: ram, offset: 0x800, size: 0x8000), at: 0x5000_0000)
        #expect(t.accelerator.memoryErrors.map(\.description) == [
            "cannot map guest RAM 'ram' at 0x50000000 (0x8000 bytes): it starts at offset 0x800 of the region, "
                + "not on a page boundary, and KVM maps whole pages",
        ])
        #expect(t.slot(at: 0x5000_0000) == nil)
    }

    /// Without errors nothing is reported and the guest runs.
    @Test func noErrorNoReport() throws {
        let t = try TinyVM()
        #expect(t.accelerator.memoryErrors.isEmpty && t.vm.failure == nil)
        try t.accelerator.checkMemory()
        #expect(try t.run([0xf4]) == .halted)
    }
}
