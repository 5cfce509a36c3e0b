import Memory
import Synchronization

/// The ACPI PM1a event and control blocks of the PIIX4 power-management function, at the
/// FADT's PM1a_EVT_BLK (0x600, 4 bytes: status, enable) and PM1a_CNT_BLK (0x604, 2 bytes).
/// The machine is always in ACPI mode (the FADT has no SMI command port), so SCI_EN reads 1.
/// Writing SLP_EN with a sleep type enters that state, with PIIX4's types (the DSDT's packages):
/// 0 soft-off (S5), 1 suspend to RAM (S3), 2 suspend to disk (S4, which QEMU turns into a
/// shutdown); other types do nothing. After a wake-up the machine sets WAK_STS with the wake
/// source's status bit (`noteWakeup`). RTC_EN in the enable register lets the RTC alarm wake the
/// machine (`rtcWakeEnabled`). QEMU: `acpi_pm1_evt_*`, `acpi_pm1_cnt_*` (hw/acpi/core.c) inside
/// PIIX4_PM, acpi_notify_wakeup().
public final class ACPIPMRegisters: Resettable {
    /// PM1a_EVT_BLK's port, where SeaBIOS puts the PM base; PM1a_CNT_BLK is 4 above.
    public static let defaultBase: UInt64 = 0x600
    /// PM1 control: SCI_EN, always set (the machine is always in ACPI mode). QEMU: ACPI_BITMASK_SCI_ENABLE.
    public static let sciEnable: UInt16 = 1 << 0
    /// PM1 control: SLP_EN, written with SLP_TYP to enter a sleep state. QEMU: ACPI_BITMASK_SLEEP_ENABLE.
    public static let sleepEnable: UInt16 = 1 << 13

    /// PM1 status/enable (4 bytes) and control (2 bytes, 2 spare) in one 8-byte window below
    /// the PM timer.
    public let eventRegion: MemoryRegion
    /// PM1a control (2 bytes: SCI_EN, SLP_TYP, SLP_EN), mapped 4 above the event block. QEMU: acpi_pm_cnt_ops.
    public let controlRegion: MemoryRegion
    /// PM1 status bits: the power button (write 1 to clear).
    public static let powerButtonStatus: UInt16 = 1 << 8
    /// PM1 enable bits the SCI follows (timer, global lock, power button, RTC).
    /// QEMU: the mask in acpi_pm1_evt_get_sts() / pm_update_sci().
    static let sciEvents: UInt16 = 1 << 0 | 1 << 5 | 1 << 8 | 1 << 10
    /// PM1 status: TMR_STS, set each time bit 23 of the PM timer changes.
    public static let timerStatus: UInt16 = 1 << 0
    /// PM1 status/enable: RTC_STS / RTC_EN (the RTC alarm).
    public static let rtcStatus: UInt16 = 1 << 10
    /// PM1 status: WAK_STS, set when the machine woke from a sleep state.
    public static let wakeStatus: UInt16 = 1 << 15

    /// A sleep state the guest entered through PM1a_CNT.
    public enum SleepState: Sendable, Equatable {
        /// SLP_TYP 0: soft off.
        case s5
        /// SLP_TYP 1: suspend to RAM.
        case s3
        /// SLP_TYP 2: suspend to disk (QEMU: SUSPEND_DISK, then a guest shutdown).
        case s4
    }

    /// What woke the machine. QEMU: WakeupReason.
    public enum WakeReason: Sendable, Equatable {
        /// The RTC alarm (QEMU_WAKEUP_REASON_RTC): WAK_STS | RTC_STS.
        case rtc
        /// Anything else, e.g. QMP system_wakeup (QEMU_WAKEUP_REASON_OTHER): WAK_STS with
        /// PWRBTN_STS, as though the power button woke it.
        case other
    }
    private let state = Mutex<(status: UInt16, enable: UInt16, control: UInt16)>((0, 0, ACPIPMRegisters.sciEnable))
    /// Bit 23 periods of the PM timer when TMR_STS was last cleared.
    private let timerEpoch = Mutex<UInt64>(0)
    private let timerTicks: @Sendable () -> UInt64
    private let sleep: @Sendable (SleepState) -> Void
    private let sci: IRQ

    /// - Parameters:
    ///   - sleep: called when the guest enters S5, S3 or S4 (on the vCPU's thread).
    ///   - sci: the SCI line (ISA IRQ 9, level, as the FADT says), high while an enabled event
    ///     is pending.
    ///   - timerTicks: the PM timer's unwrapped ticks (`ACPIPMTimer.ticks`), for TMR_STS.
    public init(sci: IRQ = .disconnected(), timerTicks: @escaping @Sendable () -> UInt64 = { 0 },
                sleep: @escaping @Sendable (SleepState) -> Void) {
        self.sleep = sleep
        self.sci = sci
        self.timerTicks = timerTicks
        timerEpoch.withLock { $0 = timerTicks() >> 23 }
        let owner = RegionOwner<ACPIPMRegisters>()
        let impl = AccessConstraints(minAccessSize: 2, maxAccessSize: 2)
        eventRegion = .io(name: "acpi-evt", size: 4, ops: owner.ops(read: ACPIPMRegisters.readEvent, write: ACPIPMRegisters.writeEvent,
                                                                     unbound: 0, valid: .upTo(4), implementation: impl))
        controlRegion = .io(name: "acpi-cnt", size: 2, ops: owner.ops(read: ACPIPMRegisters.readControl, write: ACPIPMRegisters.writeControl,
                                                                       unbound: 0, valid: .upTo(4), implementation: impl))
        owner.set(self)
    }

    /// Maps the blocks at `base` (event) and `base + 4` (control).
    public func map(into io: MemoryRegion, at base: UInt64 = ACPIPMRegisters.defaultBase) {
        io.addSubregion(eventRegion, at: base)
        io.addSubregion(controlRegion, at: base + 4)
    }

    var control: UInt16 { state.withLock { $0.control } }

    private func readEvent(_ offset: UInt64, _ size: Int) -> UInt64 {
        guard offset < 2 else { return UInt64(state.withLock { $0.enable }) }
        let timerBit = timerTicks() >> 23 != timerEpoch.withLock({ $0 }) ? Self.timerStatus : 0
        return UInt64(state.withLock { $0.status } | timerBit)
    }

    private func writeEvent(_ offset: UInt64, _ value64: UInt64, _ size: Int) {
        let value = UInt16(truncatingIfNeeded: value64)
        if offset < 2, value & Self.timerStatus != 0 { timerEpoch.withLock { $0 = timerTicks() >> 23 } }
        let level = state.withLock { s -> Bool in
            if offset < 2 { s.status &= ~value } else { s.enable = value }   // status: write 1 to clear
            return Self.sciLevel(s)
        }
        sci.set(level)
    }

    /// SCI is high while an enabled PM1 event is pending and SCI_EN is set. QEMU: pm_update_sci().
    private static func sciLevel(_ s: (status: UInt16, enable: UInt16, control: UInt16)) -> Bool {
        s.control & sciEnable != 0 && s.status & s.enable & sciEvents != 0
    }

    /// The power button was pressed (QMP system_powerdown): PWRBTN_STS, if the guest enabled
    /// the event, and the SCI. QEMU: acpi_pm1_evt_power_down().
    public func pressPowerButton() {
        let level = state.withLock { s -> Bool? in
            guard s.enable & Self.powerButtonStatus != 0 else { return nil }
            s.status |= Self.powerButtonStatus
            return Self.sciLevel(s)
        }
        if let level { sci.set(level) }
    }

    /// Whether RTC_EN is set: the RTC alarm may wake the machine. QEMU: acpi_pm1_evt_write_en()
    /// → qemu_system_wakeup_enable(QEMU_WAKEUP_REASON_RTC, ...).
    public var rtcWakeEnabled: Bool { state.withLock { $0.enable & Self.rtcStatus != 0 } }

    /// The machine woke (after its reset): WAK_STS and the source's status bit, and the SCI if
    /// enabled. QEMU: acpi_notify_wakeup().
    public func noteWakeup(_ reason: WakeReason) {
        let level = state.withLock { s -> Bool in
            s.status |= Self.wakeStatus | (reason == .rtc ? Self.rtcStatus : Self.powerButtonStatus)
            return Self.sciLevel(s)
        }
        sci.set(level)
    }

    /// Back to the power-on state (status and enable clear, SCI_EN set, SCI low).
    public func reset() {
        state.withLock { $0 = (0, 0, Self.sciEnable) }
        timerEpoch.withLock { $0 = timerTicks() >> 23 }
        sci.lower()
    }

    private func readControl(_ offset: UInt64, _ size: Int) -> UInt64 { UInt64(control) }

    private func writeControl(_ offset: UInt64, _ value64: UInt64, _ size: Int) {
        let value = UInt16(truncatingIfNeeded: value64)
        let entered = state.withLock { s -> SleepState? in
            s.control = (value & ~ACPIPMRegisters.sleepEnable) | ACPIPMRegisters.sciEnable
            guard value & ACPIPMRegisters.sleepEnable != 0 else { return nil }
            switch (value >> 10) & 7 {
            case 0: return .s5
            case 1: return .s3
            case 2: return .s4
            default: return nil
            }
        }
        if let entered { sleep(entered) }
    }
}

/// The PIIX3 reset control register at I/O 0xcf9 (the FADT's reset register): writing a value
/// with bit 2 set resets the machine. QEMU: `rcr_write()` (hw/isa/piix3.c).
public final class ResetControl: Sendable {
    /// "piix-reset-control": the 1-byte register.
    public let region: MemoryRegion
    private let value = Atomic<UInt8>(0)
    private let reset: @Sendable () -> Void

    /// A register calling `reset` when the guest writes a value with bit 2 set.
    public init(reset: @escaping @Sendable () -> Void) {
        self.reset = reset
        let owner = RegionOwner<ResetControl>()
        region = .io(name: "piix-reset-control", size: 1, ops: owner.ops(read: ResetControl.read, write: ResetControl.write,
                                                                          unbound: 0, valid: .bytes, implementation: .bytes))
        owner.set(self)
    }

    private func read(_ offset: UInt64, _ size: Int) -> UInt64 { UInt64(value.load(ordering: .relaxed)) }

    private func write(_ offset: UInt64, _ v: UInt64, _ size: Int) {
        let byte = UInt8(truncatingIfNeeded: v)
        value.store(byte & 0x02, ordering: .relaxed)
        if byte & 0x04 != 0 { reset() }
    }

    /// Maps the register at 0xcf9 above CONFIG_ADDRESS (0xcf8-0xcfb), priority 1 as QEMU's
    /// "piix3-reset-control": byte accesses to 0xcf9 reach it, wider ones at 0xcf8 the PCI host.
    /// QEMU: piix3_realize() (memory_region_add_subregion_overlap(..., 1)).
    public func map(into io: MemoryRegion, at port: UInt64 = 0xcf9) { io.addSubregion(region, at: port, priority: 1) }
}
