import KVM
import Logging

/// Per-vCPU state a PC firmware would leave: initial MSRs and the local APIC's LINT pins.
enum VCPUSetup {
    /// MSRs QEMU sets at reset (`kvm_put_msrs`): fast strings in IA32_MISC_ENABLE, the
    /// power-on PAT. One KVM refuses is dropped with a warning rather than aborting — QEMU
    /// aborts on this machine's KVM (MSR 0x10a); we must not.
    static func setInitialMSRs(_ vcpu: VCPU, logger: Logger) {
        var entries: [(index: UInt32, value: UInt64)] = [
            (0x1a0, 1),                          // IA32_MISC_ENABLE: fast string operations
            (0x277, 0x0007_0406_0007_0406),      // IA32_PAT power-on value
        ]
        while !entries.isEmpty {
            let set: Int
            do { set = try vcpu.setMSRs(entries) } catch {
                logger.warning("vCPU \(vcpu.id): KVM_SET_MSRS failed (\(error)); continuing with KVM's defaults")
                return
            }
            if set >= entries.count { return }
            let refused = entries[set]
            logger.warning("vCPU \(vcpu.id): KVM refused MSR 0x\(String(refused.index, radix: 16)); continuing without it")
            entries.remove(at: set)
        }
    }

    /// Sets the machine's CPUID; if KVM refuses it, falls back to KVM's own supported list
    /// with a warning instead of aborting (QEMU aborts on refused vCPU setup).
    static func setCPUID(_ vcpu: VCPU, policy: [CPUIDEntry], fallback: [CPUIDEntry], logger: Logger) {
        do {
            try vcpu.setCPUID(policy)
        } catch {
            logger.warning("vCPU \(vcpu.id): \(error); using KVM's supported CPUID unchanged")
            do { try vcpu.setCPUID(fallback) } catch {
                logger.warning("vCPU \(vcpu.id): \(error); running with KVM's default CPUID")
            }
        }
    }

    /// LINT0 as ExtINT on the BSP (the 8259 "virtual wire") and LINT1 as NMI on every CPU, as
    /// QEMU's `apic_reset_common()` leaves them; `softwareEnable` also sets the spurious
    /// vector register's enable bit (what a guest's own APIC setup would do).
    static func resetLocalAPIC(_ vcpu: VCPU, bsp: Bool, softwareEnable: Bool = false) throws {
        var lapic = try vcpu.getLAPIC()
        func put(_ offset: Int, _ value: UInt32) {
            for b in 0..<4 { lapic[offset + b] = UInt8(truncatingIfNeeded: value >> (8 * UInt32(b))) }
        }
        if softwareEnable { put(0xf0, 0x1ff) }
        if bsp { put(0x350, 0x700) }
        put(0x360, 0x400)
        try vcpu.setLAPIC(lapic)
    }
}
