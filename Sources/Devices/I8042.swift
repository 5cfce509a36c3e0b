import Memory

/// The smallest useful i8042 keyboard controller: data port 0x60 reads 0, the status port 0x64
/// reads "system flag set, input buffer empty", and a pulse command (0xf0-0xff) with bit 0 clear
/// — 0xfe is the reboot path many small kernels use — resets the machine.
/// QEMU: i8042 (hw/input/pckbd.c), kbd_write_command() (KBD_CCMD_PULSE_BITS_3_0).
public final class I8042: Sendable {
    public let dataRegion: MemoryRegion
    public let commandRegion: MemoryRegion

    public init(reset: @escaping @Sendable () -> Void) {
        let byteOnly = AccessConstraints(minAccessSize: 1, maxAccessSize: 1)
        dataRegion = .io(name: "i8042-data", size: 1, ops: MemoryRegionOps(
            read: { _, _ in 0 }, write: { _, _, _ in }, valid: byteOnly, implementation: byteOnly))
        commandRegion = .io(name: "i8042-cmd", size: 1, ops: MemoryRegionOps(
            read: { _, _ in 0x1c },
            // Commands 0xf0-0xff pulse output-port bits 3-0; bit 0 low pulses the reset line.
            write: { _, value, _ in if value & 0xf1 == 0xf0 { reset() } },
            valid: byteOnly, implementation: byteOnly))
    }

    public func map(into io: MemoryRegion) {
        io.addSubregion(dataRegion, at: 0x60)
        io.addSubregion(commandRegion, at: 0x64)
    }
}
