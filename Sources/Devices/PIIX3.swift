import Memory

/// The PIIX3 functions QEMU's pc puts at 00:01: the PCI-to-ISA bridge (00:01.0, multi-function),
/// the IDE controller (00:01.1, with its bus-master DMA I/O BAR4) and the PIIX4 power-management
/// function (00:01.3). Here they are identity only — their registers read as zeros — so that
/// kernels enumerating bus 0 see the same functions at the same places as under QEMU.
/// QEMU: piix3 (hw/isa/piix.c), piix3-ide (hw/ide/piix.c), PIIX4_PM (hw/acpi/piix4.c).
public enum PIIX3 {
    /// 00:01.0, PCI-to-ISA bridge.
    public static func isaBridge() -> PCIDevice {
        let d = PCIDevice(vendorID: 0x8086, deviceID: 0x7000, classCode: 0x06_01_00, subsystemVendorID: 0x1af4, subsystemID: 0x1100)
        d.setMultiFunction(true)
        return d
    }

    /// 00:01.1, IDE controller in compatibility mode with a 16-port bus-master BAR4.
    public static func ide() -> PCIDevice {
        let d = PCIDevice(vendorID: 0x8086, deviceID: 0x7010, classCode: 0x01_01_80)
        let ops = MemoryRegionOps(read: { _, _ in 0 }, write: { _, _, _ in },
                                  valid: AccessConstraints(minAccessSize: 1, maxAccessSize: 4),
                                  implementation: AccessConstraints(minAccessSize: 1, maxAccessSize: 4))
        d.registerBAR(4, region: MemoryRegion.io(name: "piix-bmdma-container", size: 16, ops: ops), kind: .io)
        return d
    }

    /// 00:01.3, power management (ACPI, SMBus).
    public static func powerManagement() -> PCIDevice {
        // Interrupt pin A: the SCI (QEMU's piix4_pm sets PCI_INTERRUPT_PIN to 1; SeaBIOS then
        // writes line 9, the SCI's ISA IRQ).
        let pm = PCIDevice(vendorID: 0x8086, deviceID: 0x7113, classCode: 0x06_80_00, revision: 0x03, interruptPin: 1)
        pm.configWrite(offset: PCIDevice.Register.interruptLine, value: 9, size: 1)
        return pm
    }
}
