/// The Fixed ACPI Description Table, revision 3 (244 bytes, the ACPI 2.0/3.0 layout): where
/// the fixed PM hardware lives, the SCI, the reset register, and pointers to FACS and DSDT.
/// Values follow QEMU's `pc` machine.
enum FADT {
    static let revision: UInt8 = 3
    static let size = 244

    // Offsets tests and readers rely on.
    static let offsetFirmwareControl = 36
    static let offsetDSDT = 40
    static let offsetPMTimerBlock = 76
    static let offsetResetRegister = 116
    static let offsetXDSDT = 140

    /// Fixed feature flags: WBINVD (0), PROC_C1 (2), SLP_BUTTON (5), RTC_S4 (7),
    /// RESET_REG_SUP (10), USE_PLATFORM_CLOCK (15). The 24-bit PM timer means no TMR_VAL_EXT.
    static let flags: UInt32 = 1 << 0 | 1 << 2 | 1 << 5 | 1 << 7 | 1 << 10 | 1 << 15
    /// The PIIX/ICH reset control register and the value that hard-resets the machine.
    static let resetPort: UInt64 = 0xCF9
    static let resetValue: UInt8 = 0x06

    static func build(facs: UInt64, dsdt: UInt64, configuration c: ACPIConfiguration) -> [UInt8] {
        let pm1aEvent = UInt32(c.pmBase)
        let pm1aControl = UInt32(c.pmBase) + 4
        let pmTimer = UInt32(c.pmBase) + 8
        var t = SystemDescriptionTable(signature: "FACP", revision: revision, configuration: c)
        t.append(UInt32(truncatingIfNeeded: facs))  // FIRMWARE_CTRL
        t.append(UInt32(truncatingIfNeeded: dsdt))  // DSDT
        t.append(UInt8(0))  // reserved (ACPI 1.0 INT_MODEL)
        t.append(UInt8(0))  // preferred PM profile: unspecified
        t.append(c.sciInterrupt)  // SCI_INT
        t.append(c.smiCommandPort)  // SMI_CMD
        let smm = c.smiCommandPort != 0
        t.append(UInt8(smm ? 0xF1 : 0))  // ACPI_ENABLE
        t.append(UInt8(smm ? 0xF0 : 0))  // ACPI_DISABLE
        t.append(UInt8(0))  // S4BIOS_REQ
        t.append(UInt8(0))  // PSTATE_CNT
        t.append(pm1aEvent)  // PM1a_EVT_BLK
        t.append(UInt32(0))  // PM1b_EVT_BLK
        t.append(pm1aControl)  // PM1a_CNT_BLK
        t.append(UInt32(0))  // PM1b_CNT_BLK
        t.append(UInt32(0))  // PM2_CNT_BLK
        t.append(pmTimer)  // PM_TMR_BLK
        t.append(UInt32(0))  // GPE0_BLK
        t.append(UInt32(0))  // GPE1_BLK
        t.append(UInt8(4))  // PM1_EVT_LEN
        t.append(UInt8(2))  // PM1_CNT_LEN
        t.append(UInt8(0))  // PM2_CNT_LEN
        t.append(UInt8(4))  // PM_TMR_LEN
        t.append(UInt8(0))  // GPE0_BLK_LEN
        t.append(UInt8(0))  // GPE1_BLK_LEN
        t.append(UInt8(0))  // GPE1_BASE
        t.append(UInt8(0))  // CST_CNT
        t.append(UInt16(0x0FFF))  // P_LVL2_LAT: > 100, C2 not supported
        t.append(UInt16(0x0FFF))  // P_LVL3_LAT: > 1000, C3 not supported
        t.append(UInt16(0))  // FLUSH_SIZE
        t.append(UInt16(0))  // FLUSH_STRIDE
        t.append(UInt8(0))  // DUTY_OFFSET
        t.append(UInt8(0))  // DUTY_WIDTH
        t.append(UInt8(0))  // DAY_ALRM
        t.append(UInt8(0))  // MON_ALRM
        t.append(UInt8(0x32))  // CENTURY: the CMOS RTC's century register
        t.append(c.bootArchitectureFlags)  // IAPC_BOOT_ARCH
        t.append(UInt8(0))  // reserved
        t.append(flags)
        t.appendIOAddress(port: resetPort, bits: 8, accessSize: 1)  // RESET_REG
        t.append(resetValue)  // RESET_VALUE
        t.append(bytes: [0, 0, 0])  // reserved (ARM_BOOT_ARCH, minor version in later revisions)
        t.append(UInt64(0))  // X_FIRMWARE_CTRL: 0 since FIRMWARE_CTRL is set, as QEMU does
        t.append(dsdt)  // X_DSDT
        t.appendIOAddress(port: UInt64(pm1aEvent), bits: 32, accessSize: 2)  // X_PM1a_EVT_BLK
        t.appendIOAddress(port: 0, bits: 0, accessSize: 0)  // X_PM1b_EVT_BLK
        t.appendIOAddress(port: UInt64(pm1aControl), bits: 16, accessSize: 2)  // X_PM1a_CNT_BLK
        t.appendIOAddress(port: 0, bits: 0, accessSize: 0)  // X_PM1b_CNT_BLK
        t.appendIOAddress(port: 0, bits: 0, accessSize: 0)  // X_PM2_CNT_BLK
        t.appendIOAddress(port: UInt64(pmTimer), bits: 32, accessSize: 3)  // X_PM_TMR_BLK
        t.appendIOAddress(port: 0, bits: 0, accessSize: 0)  // X_GPE0_BLK
        t.appendIOAddress(port: 0, bits: 0, accessSize: 0)  // X_GPE1_BLK
        let table = t.finish()
        assert(table.count == size)
        return table
    }
}
