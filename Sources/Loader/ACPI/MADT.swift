/// The Multiple APIC Description Table ("APIC"): the local APIC address, one Processor Local
/// APIC entry per CPU, the IOAPIC, the ISA interrupt source overrides and the LINT1 NMI, as
/// QEMU's `pc` machine describes them.
enum MADT {
    static let revision: UInt8 = 3
    /// Flags: PCAT_COMPAT — dual 8259 PICs are present and must be masked to use APICs.
    static let pcatCompat: UInt32 = 1

    static let typeLocalAPIC: UInt8 = 0
    static let typeIOAPIC: UInt8 = 1
    static let typeInterruptOverride: UInt8 = 2
    static let typeLocalAPICNMI: UInt8 = 4

    /// MPS INTI flags: active high (01) in bits 0-1, level triggered (11) in bits 2-3.
    static let levelActiveHigh: UInt16 = 0x000D
    /// ISA IRQs that are PCI interrupts on the PIIX (QEMU's `pci_irq_mask` 0x0e20).
    static let pciIRQs: [UInt8] = [5, 9, 10, 11]

    static func build(configuration c: ACPIConfiguration) -> [UInt8] {
        var t = SystemDescriptionTable(signature: "APIC", revision: revision, configuration: c)
        t.append(c.localAPICAddress)
        t.append(pcatCompat)
        for cpu in 0..<c.cpuCount {
            t.append(bytes: [typeLocalAPIC, 8, UInt8(cpu), UInt8(cpu)])  // UID, APIC ID
            t.append(UInt32(1))  // enabled
        }
        t.append(bytes: [typeIOAPIC, 12, c.ioapicID, 0])
        t.append(c.ioapicAddress)
        t.append(UInt32(0))  // GSI base
        // The PIT's IRQ 0 is wired to IOAPIC pin 2; edge/high is the ISA default (flags 0).
        appendOverride(&t, irq: 0, gsi: 2, flags: 0)
        for irq in pciIRQs { appendOverride(&t, irq: irq, gsi: UInt32(irq), flags: levelActiveHigh) }
        // LINT1 of every processor (UID 0xFF) is the NMI input.
        t.append(bytes: [typeLocalAPICNMI, 6, 0xFF])
        t.append(UInt16(0))  // flags: conforms to the bus
        t.append(UInt8(1))  // LINT1
        return t.finish()
    }

    private static func appendOverride(_ t: inout SystemDescriptionTable, irq: UInt8, gsi: UInt32, flags: UInt16) {
        t.append(bytes: [typeInterruptOverride, 10, 0, irq])  // bus 0: ISA
        t.append(gsi)
        t.append(flags)
    }
}
