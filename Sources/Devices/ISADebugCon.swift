import Memory

/// Bochs' debug console port: every byte written goes to a character backend, a read returns
/// the readback value (0xe9 by default, which is how firmware probes for the port). SeaBIOS
/// prints its log to port 0x402 this way. One port; a wider write outputs only its low byte, as
/// QEMU's callback (which takes up to 4 bytes and writes `(unsigned char)val`) does. Nothing is
/// kept: a guest cannot make it buffer or block beyond the backend's own write. QEMU: isa-debugcon (hw/char/debugcon.c:
/// debugcon_ioport_write(), debugcon_ioport_read()).
public final class ISADebugCon: Sendable {
    /// The one-port region "debugcon".
    public let region: MemoryRegion
    /// The port (0xe9 by default; SeaBIOS logs to 0x402). QEMU: the "iobase" property.
    public let iobase: UInt16
    /// What a read of the port returns. QEMU: the "readback" property.
    public let readback: UInt8

    /// QEMU's defaults: port 0xe9, readback 0xe9.
    public init(iobase: UInt16 = 0xe9, readback: UInt8 = 0xe9, backend: any SerialBackend) {
        self.iobase = iobase
        self.readback = readback
        region = MemoryRegion.io(
            name: "debugcon", size: 1,
            ops: MemoryRegionOps(
                read: { _, _ in UInt64(readback) },
                write: { _, value, _ in backend.write([UInt8(truncatingIfNeeded: value)]) },
                valid: AccessConstraints(minAccessSize: 1, maxAccessSize: 4),
                implementation: AccessConstraints(minAccessSize: 1, maxAccessSize: 4)))
    }

    /// Maps the port at `iobase` in the I/O address space.
    public func map(into io: MemoryRegion) {
        io.addSubregion(region, at: UInt64(iobase))
    }
}
