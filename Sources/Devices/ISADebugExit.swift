import Memory
import VMMSys

/// Lets a test kernel end the VM with a status: a write of V (1 to 4 bytes, anywhere in the
/// port range) calls `onExit((V << 1) | 1)`; the VMM exits the process with that status, so a
/// guest can never produce 0. Reads return 0. With QEMU's `-device isa-debug-exit,iobase=0xf4,
/// iosize=0x4` a guest writing 0 makes the VMM exit 1. QEMU: isa-debug-exit (hw/misc/debugexit.c).
public final class ISADebugExit: Sendable {
    /// The port range; the machine maps it at `iobase`.
    public let region: MemoryRegion
    /// The first port (`iobase=`).
    public let iobase: UInt16
    /// The number of ports (`iosize=`).
    public let iosize: UInt16

    /// QEMU's defaults are iobase 0x501, iosize 0x02; test kernels use 0xf4/0x4.
    public init(iobase: UInt16 = 0x501, iosize: UInt16 = 0x02, onExit: @escaping @Sendable (Int32) -> Void) {
        self.iobase = iobase
        self.iosize = iosize
        region = MemoryRegion.io(
            name: "isa-debug-exit", size: UInt128(max(iosize, 1)),
            ops: MemoryRegionOps(
                read: { _, _ in 0 },
                write: { _, value, _ in
                    StartupTrace.mark("guest-exit")
                    onExit(ISADebugExit.status(for: value))
                },
                valid: AccessConstraints(minAccessSize: 1, maxAccessSize: 4),
                implementation: AccessConstraints(minAccessSize: 1, maxAccessSize: 4)))
    }

    /// The exit status for a written value, as QEMU's `exit((val << 1) | 1)` computes it in C
    /// (an `int`: the shift wraps).
    public static func status(for value: UInt64) -> Int32 {
        Int32(truncatingIfNeeded: (UInt32(truncatingIfNeeded: value) &<< 1) | 1)
    }

    /// Maps the port range at `iobase` in the I/O address space.
    public func map(into io: MemoryRegion) {
        io.addSubregion(region, at: UInt64(iobase))
    }
}
