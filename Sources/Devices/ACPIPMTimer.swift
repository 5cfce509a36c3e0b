import Memory
import VMMSys

/// The ACPI power-management timer: a free-running 24-bit counter at 3.579545 MHz, read as a
/// 32-bit register (upper byte 0), that kernels find through the FADT's PM_TMR_BLK and use to
/// calibrate. Derived from the host monotonic clock, so it never goes backwards except when the
/// 24 bits wrap (every ~4.7 s). Only 4-byte accesses are valid, as on QEMU; writes are ignored.
/// QEMU: acpi_pm_tmr (hw/acpi/core.c), "acpi-tmr" at PM base + 8 (0x608 on `pc`).
public final class ACPIPMTimer: Sendable {
    /// The 4-byte register ("acpi-tmr"), mapped by the machine in the I/O space.
    public let region: MemoryRegion
    /// Where the `pc` machine maps it: PM base 0x600 + 8. QEMU: acpi_pm_tmr_init() in the PIIX4
    /// PM's I/O block.
    public static let defaultPort: UInt64 = 0x608
    /// Counter frequency in Hz. QEMU: `PM_TIMER_FREQUENCY`.
    public static let frequency: UInt64 = 3_579_545

    private let nanoseconds: @Sendable () -> UInt64

    /// - Parameter nanoseconds: a monotonic clock in ns; defaults to CLOCK_MONOTONIC.
    public init(nanoseconds: @escaping @Sendable () -> UInt64 = ACPIPMTimer.monotonicNanoseconds) {
        self.nanoseconds = nanoseconds
        let clock = nanoseconds
        region = MemoryRegion.io(
            name: "acpi-tmr", size: 4,
            ops: MemoryRegionOps(
                read: { offset, _ in UInt64(ACPIPMTimer.counter(atNanoseconds: clock())) >> (8 * (offset & 3)) },
                write: { _, _, _ in },
                valid: AccessConstraints(minAccessSize: 4, maxAccessSize: 4),
                implementation: AccessConstraints(minAccessSize: 4, maxAccessSize: 4)))
    }

    /// Maps the timer at 0x608.
    public func map(into io: MemoryRegion, at port: UInt64 = ACPIPMTimer.defaultPort) {
        io.addSubregion(region, at: port)
    }

    /// The current counter value.
    public var value: UInt32 { ACPIPMTimer.counter(atNanoseconds: nanoseconds()) }

    /// Ticks of the 3.579545 MHz clock so far, not wrapped (TMR_STS watches bit 23 of these).
    public var ticks: UInt64 { UInt64(truncatingIfNeeded: UInt128(nanoseconds()) * UInt128(Self.frequency) / 1_000_000_000) }

    /// ns × 3579545 / 10⁹ in 128-bit arithmetic (no overflow), masked to 24 bits.
    static func counter(atNanoseconds ns: UInt64) -> UInt32 {
        let ticks = UInt128(ns) * UInt128(frequency) / 1_000_000_000
        return UInt32(truncatingIfNeeded: ticks) & 0x00ff_ffff
    }

    /// CLOCK_MONOTONIC in nanoseconds.
    public static let monotonicNanoseconds: @Sendable () -> UInt64 = { HostClock.monotonicNanoseconds() }
}
