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

extension VCPUSetup {
    /// The local APIC's registers at power-on (SDM vol. 3 §10.4.7.1): ID and version kept,
    /// IRR/ISR/TMR, TPR, the timer and ESR clear, every LVT masked, DFR all ones, SVR 0xff.
    /// QEMU: apic_reset_common() → apic_init_reset().
    static func powerOnLocalAPIC(_ vcpu: VCPU) throws {
        let now = try vcpu.getLAPIC()
        var lapic = [UInt8](repeating: 0, count: now.count)
        for offset in [0x20, 0x30] { for b in 0..<4 { lapic[offset + b] = now[offset + b] } }
        func put(_ offset: Int, _ value: UInt32) {
            for b in 0..<4 { lapic[offset + b] = UInt8(truncatingIfNeeded: value >> (8 * UInt32(b))) }
        }
        put(0xe0, 0xffff_ffff)
        put(0xf0, 0xff)
        for lvt in stride(from: 0x320, through: 0x370, by: 0x10) { put(lvt, 0x1_0000) }
        try vcpu.setLAPIC(lapic)
    }
}

/// The in-kernel interrupt controllers as the pc machine's firmware leaves them.
enum InterruptControllerSetup {
    /// The PIIX ELCR: ISA IRQs 10 and 11 (the PCI INTx lines SeaBIOS routes PIRQs to) level-
    /// triggered, the rest edge. SeaBIOS: piix_isa_bridge_setup() writes 0x00/0x0c to
    /// 0x4d0/0x4d1 (IRQ 9, the SCI, stays edge in the 8259 view).
    static let elcr: (master: UInt8, slave: UInt8) = (0x00, 0x0c)

    static func programELCR(_ vm: VirtualMachine) throws {
        for (chip, bits) in [(UInt32(0), elcr.master), (1, elcr.slave)] {
            var pic = try vm.getPIC(chip)
            pic.elcr = bits & pic.elcrMask
            try vm.setPIC(chip, pic)
        }
    }

    /// The 8259 pair and the IOAPIC back to their reset state (the ELCR kept: the PIIX does
    /// not reset it; firmware reprograms it), every IOAPIC entry masked.
    /// QEMU: pic_reset_common(), ioapic_reset_common().
    static func reset(_ vm: VirtualMachine) throws {
        for chip: UInt32 in [0, 1] {
            let old = try vm.getPIC(chip)
            var pic = PICState()
            pic.elcr = old.elcr
            pic.elcrMask = old.elcrMask
            try vm.setPIC(chip, pic)
        }
        var ioapic = IOAPICState()
        ioapic.baseAddress = try vm.getIOAPIC().baseAddress
        ioapic.redirectionTable = [UInt64](repeating: 1 << 16, count: 24)
        try vm.setIOAPIC(ioapic)
    }
}

extension VCPUSetup {
    /// The architectural reset state a CPU starts firmware in: real mode at the reset vector
    /// (CS 0xf000 with base 0xffff0000, IP 0xfff0, so the first fetch is 0xfffffff0), CR0
    /// 0x60000010 (cache disabled, ET), data segments and descriptor tables at 0 with 64 KiB
    /// limits, EDX the CPU signature (CPUID 1 EAX), the FPU at its reset control words, the APIC
    /// base at 0xfee00000 enabled (BSP flag on `bsp`). QEMU: x86_cpu_reset_hold()
    /// (target/i386/cpu.c); SDM vol. 3 §9.1.1, table 9-1.
    static func resetToResetVector(_ vcpu: VCPU, bsp: Bool, signature: UInt32) throws {
        var s = SpecialRegisters()
        let data = Segment(base: 0, limit: 0xffff, selector: 0, type: 0x3, present: true, s: true)
        s.cs = Segment(base: 0xffff_0000, limit: 0xffff, selector: 0xf000, type: 0xb, present: true, s: true)
        s.ds = data; s.es = data; s.fs = data; s.gs = data; s.ss = data
        s.ldt = Segment(base: 0, limit: 0xffff, selector: 0, type: 0x2, present: true, s: false)
        s.tr = Segment(base: 0, limit: 0xffff, selector: 0, type: 0xb, present: true, s: false)
        s.gdt = DescriptorTable(base: 0, limit: 0xffff)
        s.idt = DescriptorTable(base: 0, limit: 0xffff)
        s.cr0 = 0x6000_0010
        s.apicBase = 0xfee0_0000 | 0x800 | (bsp ? 0x100 : 0)
        try vcpu.setSpecialRegisters(s)
        var r = Registers()
        r.rip = 0xfff0
        r.rdx = UInt64(signature)
        try vcpu.setRegisters(r)
        try vcpu.setFPU(FPUState())
    }
}

extension VCPUSetup {
    /// Real mode at the linear address `vector` as SeaBIOS's s3_resume() enters an S3 waking
    /// vector: CS = vector >> 4, IP = vector & 0xf, the other segments and general registers
    /// 0, interrupts off, 64 KiB segment limits. For the direct boot's S3 resume.
    static func enterRealMode(_ vcpu: VCPU, at vector: UInt32) throws {
        var s = SpecialRegisters()
        let data = Segment(base: 0, limit: 0xffff, selector: 0, type: 0x3, present: true, s: true)
        let selector = UInt16(truncatingIfNeeded: vector >> 4)
        s.cs = Segment(base: UInt64(selector) << 4, limit: 0xffff, selector: selector, type: 0xb, present: true, s: true)
        s.ds = data; s.es = data; s.fs = data; s.gs = data; s.ss = data
        s.ldt = Segment(base: 0, limit: 0xffff, selector: 0, type: 0x2, present: true, s: false)
        s.tr = Segment(base: 0, limit: 0xffff, selector: 0, type: 0xb, present: true, s: false)
        s.gdt = DescriptorTable(base: 0, limit: 0xffff)
        s.idt = DescriptorTable(base: 0, limit: 0x3ff)
        s.cr0 = 0x6000_0010
        s.apicBase = 0xfee0_0000 | 0x800 | 0x100
        try vcpu.setSpecialRegisters(s)
        var r = Registers()
        r.rip = UInt64(vector & 0xf)
        r.rflags = 0x2
        try vcpu.setRegisters(r)
    }
}
