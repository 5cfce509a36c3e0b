import Memory
import Synchronization

/// The PIIX3 functions QEMU's pc puts at 00:01: the PCI-to-ISA bridge (00:01.0, multi-function),
/// the IDE controller (00:01.1, with its bus-master DMA I/O BAR4) and the PIIX4 power-management
/// function (00:01.3). Here they are identity only — their registers read as zeros — so that
/// kernels enumerating bus 0 see the same functions at the same places as under QEMU.
/// QEMU: piix3 (hw/isa/piix3.c), piix3-ide (hw/ide/piix.c), PIIX4_PM (hw/acpi/piix4.c).
public enum PIIX3 {
    /// 00:01.0, PCI-to-ISA bridge.
    public static func isaBridge() -> PCIDevice {
        let d = PCIDevice(vendorID: 0x8086, deviceID: 0x7000, classCode: 0x06_01_00, subsystemVendorID: 0x1af4, subsystemID: 0x1100)
        d.setMultiFunction(true)
        return d
    }

    /// PIRQRC[A-D], the PIIX3's PIRQ routing registers (0x60-0x63).
    public static let pirqRouteRegister = 0x60

    /// The ISA IRQ a PIRQRC value routes to, or nil: bit 7 disables the route, and IRQs 0-2,
    /// 8 and 13 cannot be PCI interrupts. QEMU: piix3_set_irq_pic() (pic_irq < ISA_NUM_IRQS).
    public static func routedIRQ(_ value: UInt8) -> UInt32? {
        guard value & 0x80 == 0 else { return nil }
        let irq = UInt32(value & 0x0f)
        return [0, 1, 2, 8, 13].contains(irq) ? nil : irq
    }

    /// With firmware: the bridge's registers from 0x40 writable and at their reset values — the
    /// PIRQ routes disabled (0x80 each) until firmware routes them — and I/O, memory and bus
    /// master on. QEMU: pci_init_wmask(), piix3_reset().
    public static func resetRouting(_ bridge: PCIDevice) {
        var regs = [UInt8](repeating: 0, count: 0xc0)
        for (at, v) in [(0x4c, 0x4d), (0x4e, 0x03), (0x60, 0x80), (0x61, 0x80), (0x62, 0x80), (0x63, 0x80), (0x69, 0x02),
                        (0x70, 0x80), (0x76, 0x0c), (0x77, 0x0c), (0x78, 0x02), (0xa0, 0x08), (0xa8, 0x0f)] as [(Int, UInt8)] {
            regs[at - 0x40] = v
        }
        bridge.setConfig(regs, at: 0x40, writeMask: 0xff)
        bridge.setConfig([0x00, 0x02], at: PCIDevice.Register.status, writeMask: 0)
        bridge.configWrite(offset: PCIDevice.Register.command, value: 0x07, size: 2)
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

/// The PIIX4 power-management function as firmware sees it (00:01.3): its PM I/O block (PM1
/// event, PM1 control and the PM timer in a 64-port "piix4-pm" window) appears at PMBA (config
/// 0x40, bits 15:6) while PMREGMISC (0x80) bit 0 is set, and moves when firmware reprograms
/// it — SeaBIOS puts it at 0x600. Registers from 0x40 are writable, as QEMU leaves every
/// device-specific register. DEVACTB (0x58-0x5b) reads 0x02 in its top byte (APMC_EN): this
/// machine has no SMM, so firmware must not try to relocate SMBASE. SMBus (0x90, 0xd2) is not
/// modelled. QEMU: piix4_pm_realize(), piix4_pm_reset(), pm_write_config(), pm_io_space_update()
/// (hw/acpi/piix4.c).
public final class PIIX4PowerManagement: PCIDevice, @unchecked Sendable {
    /// The PM I/O window, mapped into the I/O space at PMBA while enabled.
    public let window: MemoryRegion
    private let io: MemoryRegion
    private let mapped = Mutex<UInt64?>(nil)

    /// - Parameters:
    ///   - blocks: the PM registers to place in the window, at their offsets (event 0, control
    ///     4, timer 8), as QEMU's acpi_pm1_evt/cnt_init() and acpi_pm_tmr_init() place them.
    ///   - io: the I/O space the window maps into.
    public init(blocks: [(MemoryRegion, UInt64)], io: MemoryRegion) {
        self.io = io
        window = MemoryRegion.container(name: "piix4-pm", size: 64)
        for (region, offset) in blocks { window.addSubregion(region, at: offset) }
        super.init(vendorID: 0x8086, deviceID: 0x7113, classCode: 0x06_80_00, revision: 0x03, interruptPin: 1)
        setConfig([UInt8](repeating: 0, count: 0xc0), at: 0x40, writeMask: 0xff)
        reset()
    }

    /// The power-on values: PMBA 0x0001 (the I/O space indicator), PMREGMISC 0, DEVACTB with
    /// APMC_EN; the window unmapped. QEMU: piix4_pm_reset().
    public func reset() {
        setConfig([0x01, 0, 0, 0], at: 0x40, writeMask: 0xff)
        setConfig([0], at: 0x80, writeMask: 0xff)
        setConfig([0, 0, 0, 0x02], at: 0x58, writeMask: 0xff)
        updateWindow()
    }

    /// Where the window is mapped now, if it is.
    public var windowBase: UInt64? { mapped.withLock { $0 } }

    /// The default write, then the PM window remapped if PMBA (0x40-0x43) or PMREGMISC (0x80)
    /// was written. QEMU: pm_write_config().
    public override func configWrite(offset: Int, value: UInt32, size: Int) {
        super.configWrite(offset: offset, value: value, size: size)
        let end = offset &+ max(0, min(size, 4))
        if (offset..<max(offset, end)).contains(where: { $0 == 0x80 || (0x40..<0x44).contains($0) }) { updateWindow() }
    }

    /// QEMU: pm_io_space_update() — base = PMBA & 0xffc0, enabled by PMREGMISC bit 0.
    private func updateWindow() {
        mapped.withLock { at in
            let b = configBytes(at: 0x40, count: 4)
            let base = (UInt64(b[0]) | UInt64(b[1]) << 8) & 0xffc0
            let enabled = configBytes(at: 0x80, count: 1)[0] & 1 != 0
            let want: UInt64? = enabled ? base : nil
            guard want != at else { return }
            io.withTransaction {
                if at != nil { io.removeSubregion(window) }
                if let want { io.addSubregion(window, at: want) }
            }
            at = want
        }
    }
}

extension PIIX3 {
    /// The IDE controller's legacy ports with no drives attached: 0x1f0-0x1f7 and 0x3f6 (primary),
    /// 0x170-0x177 and 0x376 (secondary). Every register reads 0 — a status of 0 tells firmware
    /// no drive is busy or present, so its probe ends at once — and writes are dropped.
    /// QEMU: ide_ioport_read(), ide_status_read(), ide_data_readw() with no BlockBackend on the
    /// bus (hw/ide/core.c), mapped by piix_ide_realize() → ide_init_ioport().
    public static func ideLegacyPorts() -> [(region: MemoryRegion, port: UInt64)] {
        let ops = MemoryRegionOps(read: { _, _ in 0 }, write: { _, _, _ in },
                                  valid: AccessConstraints(minAccessSize: 1, maxAccessSize: 4),
                                  implementation: AccessConstraints(minAccessSize: 1, maxAccessSize: 4))
        return [(0x1f0, 8), (0x3f6, 1), (0x170, 8), (0x376, 1)].map { port, size in
            (MemoryRegion.io(name: "ide", size: UInt128(size), ops: ops), UInt64(port))
        }
    }
}
