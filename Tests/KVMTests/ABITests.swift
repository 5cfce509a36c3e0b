import CKVM
import Testing
import VMMSys
@testable import KVM

/// Pins the kernel ABI this module relies on: struct sizes, request numbers and the
/// kvm_run offsets used by the raw decoder. A header change shows up here first.
@Suite struct ABITests {
    @Test func structSizes() {
        #expect(MemoryLayout<kvm_ioeventfd>.size == 64)
        #expect(MemoryLayout<kvm_irqfd>.size == 32)
        #expect(MemoryLayout<kvm_userspace_memory_region>.size == 32)
        #expect(MemoryLayout<kvm_regs>.size == 144)
        #expect(MemoryLayout<kvm_sregs>.size == 312)
        #expect(MemoryLayout<kvm_segment>.size == 24)
        #expect(MemoryLayout<kvm_fpu>.size == 416)
        #expect(MemoryLayout<kvm_cpuid2>.size == 8)
        #expect(MemoryLayout<kvm_cpuid_entry2>.size == 40)
        #expect(MemoryLayout<kvm_msrs>.size == 8)
        #expect(MemoryLayout<kvm_msr_entry>.size == 16)
        #expect(MemoryLayout<kvm_irq_routing>.size == 8)
        #expect(MemoryLayout<kvm_irq_routing_entry>.size == 48)
        #expect(MemoryLayout<kvm_msi>.size == 32)
        #expect(MemoryLayout<kvm_lapic_state>.size == 1024)
        #expect(VCPU.lapicSize == 1024)
        #expect(MemoryLayout<kvm_dirty_log>.size == 16)
        #expect(MemoryLayout<kvm_clear_dirty_log>.size == 24)
        #expect(MemoryLayout<kvm_coalesced_mmio_zone>.size == 16)
        #expect(MemoryLayout<kvm_enable_cap>.size == 104)
    }

    /// The coalesced ring as the reader indexes it (`struct kvm_coalesced_mmio_ring`).
    @Test func coalescedRingLayout() {
        #expect(CKVM_COALESCED_RING_FIRST == 0 && CKVM_COALESCED_RING_LAST == 4 && CKVM_COALESCED_RING_ENTRIES == 8)
        #expect(CKVM_COALESCED_ENTRY_SIZE == 24)
        #expect(CKVM_COALESCED_ENTRY_PHYS_ADDR == 0 && CKVM_COALESCED_ENTRY_LEN == 8 && CKVM_COALESCED_ENTRY_PIO == 12)
        #expect(CKVM_COALESCED_ENTRY_DATA == 16)
        #expect(CKVM_DIRTY_LOG_MANUAL_PROTECT_ENABLE == 1 && CKVM_DIRTY_LOG_INITIALLY_SET == 2)
    }

    @Test func requestNumbers() {
        #expect(CKVM_GET_API_VERSION == 0xae00)
        #expect(CKVM_CREATE_VM == 0xae01)
        #expect(CKVM_RUN == 0xae80)
        #expect(CKVM_IOEVENTFD == 0x4040_ae79)
        #expect(CKVM_IRQFD == 0x4020_ae76)
        #expect(CKVM_SET_USER_MEMORY_REGION == 0x4020_ae46)
        #expect(CKVM_GET_REGS == 0x8090_ae81)
        #expect(CKVM_SET_SREGS == 0x4138_ae84)
        #expect(CKVM_GET_DIRTY_LOG == 0x4010_ae42)
        #expect(CKVM_CLEAR_DIRTY_LOG == 0xc018_aec0)
        #expect(CKVM_REGISTER_COALESCED_MMIO == 0x4010_ae67)
        #expect(CKVM_UNREGISTER_COALESCED_MMIO == 0x4010_ae68)
        #expect(CKVM_ENABLE_CAP == 0x4068_aea3)
    }

    @Test func kvmRunOffsets() {
        #expect(CKVM_RUN_IMMEDIATE_EXIT == 1)
        #expect(CKVM_RUN_EXIT_REASON == 8)
        #expect(CKVM_RUN_IO_DIRECTION == 32)
        #expect(CKVM_RUN_IO_SIZE == 33)
        #expect(CKVM_RUN_IO_PORT == 34)
        #expect(CKVM_RUN_IO_COUNT == 36)
        #expect(CKVM_RUN_IO_DATA_OFFSET == 40)
        #expect(CKVM_RUN_MMIO_PHYS_ADDR == 32)
        #expect(CKVM_RUN_MMIO_DATA == 40)
        #expect(CKVM_RUN_MMIO_LEN == 48)
        #expect(CKVM_RUN_MMIO_IS_WRITE == 52)
    }

    /// Opening a missing device names the operation and the errno (no /dev/kvm needed).
    @Test func openErrorNamesPathAndErrno() {
        #expect {
            _ = try KVMSystem(path: "/nonexistent/kvm")
        } throws: { error in
            guard let e = error as? SystemError else { return false }
            return e.operation == "open /nonexistent/kvm" && e.errno == ENOENT
        }
    }
}
