import Memory
import Synchronization

/// The ACPI PM1a event and control blocks of the PIIX4 power-management function, at the
/// FADT's PM1a_EVT_BLK (0x600, 4 bytes: status, enable) and PM1a_CNT_BLK (0x604, 2 bytes).
/// The machine is always in ACPI mode (the FADT has no SMI command port), so SCI_EN reads 1.
/// Writing SLP_EN with SLP_TYP 0 (the DSDT's \_S5) powers the machine off.
/// QEMU: `acpi_pm1_evt_*`, `acpi_pm1_cnt_*` (hw/acpi/core.c) inside PIIX4_PM.
public final class ACPIPMRegisters: Sendable {
    public static let defaultBase: UInt64 = 0x600
    public static let sciEnable: UInt16 = 1 << 0
    public static let sleepEnable: UInt16 = 1 << 13

    /// PM1 status/enable (4 bytes) and control (2 bytes, 2 spare) in one 8-byte window below
    /// the PM timer.
    public let eventRegion: MemoryRegion
    public let controlRegion: MemoryRegion
    private let state = Mutex<(status: UInt16, enable: UInt16, control: UInt16)>((0, 0, ACPIPMRegisters.sciEnable))

    /// - Parameter powerOff: called when the guest enters S5 (soft off).
    public init(powerOff: @escaping @Sendable () -> Void) {
        let box = DeviceRef<ACPIPMRegisters>()
        let access = AccessConstraints(minAccessSize: 1, maxAccessSize: 4)
        let impl = AccessConstraints(minAccessSize: 2, maxAccessSize: 2)
        eventRegion = .io(name: "acpi-evt", size: 4, ops: MemoryRegionOps(
            read: { offset, _ in UInt64(box.value?.readEvent(offset) ?? 0) },
            write: { offset, value, _ in box.value?.writeEvent(offset, UInt16(truncatingIfNeeded: value)) },
            valid: access, implementation: impl))
        controlRegion = .io(name: "acpi-cnt", size: 2, ops: MemoryRegionOps(
            read: { _, _ in UInt64(box.value?.control ?? 0) },
            write: { _, value, _ in box.value?.writeControl(UInt16(truncatingIfNeeded: value), powerOff: powerOff) },
            valid: access, implementation: impl))
        box.set(self)
    }

    /// Maps the blocks at `base` (event) and `base + 4` (control).
    public func map(into io: MemoryRegion, at base: UInt64 = ACPIPMRegisters.defaultBase) {
        io.addSubregion(eventRegion, at: base)
        io.addSubregion(controlRegion, at: base + 4)
    }

    var control: UInt16 { state.withLock { $0.control } }

    private func readEvent(_ offset: UInt64) -> UInt16 {
        state.withLock { offset < 2 ? $0.status : $0.enable }
    }

    private func writeEvent(_ offset: UInt64, _ value: UInt16) {
        state.withLock { s in
            if offset < 2 { s.status &= ~value } else { s.enable = value }   // status: write 1 to clear
        }
    }

    private func writeControl(_ value: UInt16, powerOff: @Sendable () -> Void) {
        let sleep = state.withLock { s -> Bool in
            s.control = (value & ~ACPIPMRegisters.sleepEnable) | ACPIPMRegisters.sciEnable
            return value & ACPIPMRegisters.sleepEnable != 0 && (value >> 10) & 7 == 0
        }
        if sleep { powerOff() }
    }
}

/// The PIIX3 reset control register at I/O 0xcf9 (the FADT's reset register): writing a value
/// with bit 2 set resets the machine. QEMU: `rcr_write()` (hw/isa/piix.c).
public final class ResetControl: Sendable {
    public let region: MemoryRegion
    private let value = Atomic<UInt8>(0)

    public init(reset: @escaping @Sendable () -> Void) {
        let box = DeviceRef<ResetControl>()
        region = .io(name: "piix-reset-control", size: 1, ops: MemoryRegionOps(
            read: { _, _ in UInt64(box.value?.value.load(ordering: .relaxed) ?? 0) },
            write: { _, v, _ in
                let byte = UInt8(truncatingIfNeeded: v)
                box.value?.value.store(byte & 0x02, ordering: .relaxed)
                if byte & 0x04 != 0 { reset() }
            },
            valid: AccessConstraints(minAccessSize: 1, maxAccessSize: 1),
            implementation: AccessConstraints(minAccessSize: 1, maxAccessSize: 1)))
        box.set(self)
    }

    public func map(into io: MemoryRegion, at port: UInt64 = 0xcf9) { io.addSubregion(region, at: port) }
}
