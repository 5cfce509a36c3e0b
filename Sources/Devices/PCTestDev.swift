import Memory
import Synchronization

/// The ISA test device small test kernels (kvm-unit-tests) use to exercise the memory core:
/// - I/O 0xe0, 4 ports: a 32-bit scratch register at any width and byte offset (the core splits
///   unaligned accesses);
/// - I/O 0xe4, 4 ports: "flush page", 32-bit writes only: `flushPage` gets the 4 KiB page of
///   the written guest-physical address (QEMU unmaps and remaps the host page);
/// - I/O 0xe8, 4 ports: the same scratch register through callbacks implementing only bytes,
///   so wider accesses reach the device as several byte accesses;
/// - I/O 0x2000, 24 ports, byte writes: V at offset N drives IRQ line N to (V != 0);
/// - MMIO 0xff000000, 64 KiB: scratch memory behind callbacks (not RAM), any width 1-4.
/// QEMU: pc-testdev (hw/misc/pc-testdev.c).
public final class PCTestDev: Sendable {
    /// The scratch register at 0xe0 (any width and offset).
    public let ioportRegion: MemoryRegion
    /// The flush-page port at 0xe4 (32-bit writes).
    public let flushPageRegion: MemoryRegion
    /// The scratch register at 0xe8 through byte-only callbacks.
    public let ioportByteRegion: MemoryRegion
    /// The 24 IRQ-line ports at 0x2000.
    public let irqRegion: MemoryRegion
    /// The 64 KiB of MMIO scratch at 0xff000000.
    public let iomemRegion: MemoryRegion

    /// The scratch register's port. QEMU: testdev_realizefn() maps each region.
    public static let ioportBase: UInt64 = 0xe0
    /// The flush-page port.
    public static let flushPageBase: UInt64 = 0xe4
    /// The byte-only scratch port.
    public static let ioportByteBase: UInt64 = 0xe8
    /// The first IRQ-line port.
    public static let irqBase: UInt64 = 0x2000
    /// The MMIO scratch window.
    public static let iomemBase: UInt64 = 0xff00_0000
    /// IRQ lines the IRQ ports drive (the IOAPIC's pins).
    public static let irqCount = 24
    /// Bytes of MMIO scratch.
    public static let iomemSize = 0x10000

    private let scratch = Mutex<UInt32>(0)
    private let iomem = Mutex<[UInt8]>([UInt8](repeating: 0, count: PCTestDev.iomemSize))
    private let irqLines: [IRQ]
    private let byteCallCounter: AtomicCounter

    /// How many times the byte-implemented register's callbacks ran (each is one byte).
    public var byteRegisterCalls: Int { byteCallCounter.value }

    /// - Parameters:
    ///   - irqLines: ISA IRQ lines 0..23 (fewer is fine: writes beyond them are ignored).
    ///   - flushPage: called with the page address a guest flushes (default: nothing).
    public init(irqLines: [IRQ] = [], flushPage: @escaping @Sendable (UInt64) -> Void = { _ in }) {
        self.irqLines = irqLines
        let owner = RegionOwner<PCTestDev>()
        let counter = AtomicCounter()
        byteCallCounter = counter
        ioportRegion = .io(name: "pc-testdev-ioport", size: 4,
                           ops: owner.ops(read: PCTestDev.readScratch, write: PCTestDev.writeScratch, unbound: 0))
        // The same register implemented one byte at a time; each callback is counted.
        ioportByteRegion = .io(name: "pc-testdev-ioport-byte", size: 4, ops: owner.ops(
            read: { d in { offset, size in counter.increment(); return d.readScratch(offset, size) } },
            write: { d in { offset, value, size in counter.increment(); d.writeScratch(offset, value, size) } },
            unbound: 0, implementation: .bytes))
        flushPageRegion = .io(
            name: "pc-testdev-flush-page", size: 4,
            ops: MemoryRegionOps(
                read: { _, _ in 0 },
                write: { _, value, _ in flushPage(value & ~0xfff) },
                valid: AccessConstraints(minAccessSize: 4, maxAccessSize: 4),
                implementation: AccessConstraints(minAccessSize: 4, maxAccessSize: 4)))
        irqRegion = .io(name: "pc-testdev-irq-line", size: UInt128(PCTestDev.irqCount),
                        ops: owner.ops(read: { _ in { _, _ in 0 } }, write: PCTestDev.setIRQ, unbound: 0,
                                       valid: .bytes, implementation: .bytes))
        iomemRegion = .io(name: "pc-testdev-iomem", size: UInt128(PCTestDev.iomemSize),
                          ops: owner.ops(read: PCTestDev.readIomem, write: PCTestDev.writeIomem, unbound: 0))
        owner.set(self)
    }

    /// Maps the four port ranges in `io` and the scratch MMIO in `memory`, at QEMU's places.
    public func map(into io: MemoryRegion, memory: MemoryRegion) {
        io.addSubregion(ioportRegion, at: PCTestDev.ioportBase)
        io.addSubregion(flushPageRegion, at: PCTestDev.flushPageBase)
        io.addSubregion(ioportByteRegion, at: PCTestDev.ioportByteBase)
        io.addSubregion(irqRegion, at: PCTestDev.irqBase)
        memory.addSubregion(iomemRegion, at: PCTestDev.iomemBase)
    }

    /// The scratch register's value.
    public var scratchValue: UInt32 { scratch.withLock { $0 } }

    /// The mask of `size` bytes at byte `offset` within the 32-bit register (empty if outside).
    private static func lane(_ offset: UInt64, _ size: Int) -> (shift: UInt64, mask: UInt64) {
        let shift = (offset & 3) * 8
        let bits = UInt64(max(0, min(size, 8))) * 8
        let ones: UInt64 = bits >= 64 ? .max : (1 << bits) - 1
        return (shift, (ones << shift) & 0xffff_ffff)
    }

    func readScratch(_ offset: UInt64, _ size: Int) -> UInt64 {
        let (shift, mask) = PCTestDev.lane(offset, size)
        return (UInt64(scratch.withLock { $0 }) & mask) >> shift
    }

    func writeScratch(_ offset: UInt64, _ value: UInt64, _ size: Int) {
        let (shift, mask) = PCTestDev.lane(offset, size)
        scratch.withLock { r in
            r = UInt32(truncatingIfNeeded: (UInt64(r) & ~mask) | ((value << shift) & mask))
        }
    }

    /// A byte written at offset N drives ISA IRQ line N (non-zero: high).
    func setIRQ(_ line: UInt64, _ value: UInt64, _ size: Int) {
        guard line < UInt64(irqLines.count) else { return }
        irqLines[Int(line)].set(value != 0)
    }

    func readIomem(_ offset: UInt64, _ size: Int) -> UInt64 {
        guard size >= 1, size <= 8, offset < UInt64(PCTestDev.iomemSize) else { return 0 }
        let start = Int(offset)
        let end = min(start + size, PCTestDev.iomemSize)
        return iomem.withLock { m in
            var v: UInt64 = 0
            for i in start..<end { v |= UInt64(m[i]) << (8 * UInt64(i - start)) }
            return v
        }
    }

    func writeIomem(_ offset: UInt64, _ value: UInt64, _ size: Int) {
        guard size >= 1, size <= 8, offset < UInt64(PCTestDev.iomemSize) else { return }
        let start = Int(offset)
        let end = min(start + size, PCTestDev.iomemSize)
        iomem.withLock { m in
            for i in start..<end { m[i] = UInt8(truncatingIfNeeded: value >> (8 * UInt64(i - start))) }
        }
    }
}

/// A shareable counter.
final class AtomicCounter: Sendable {
    private let count = Atomic<Int>(0)
    func increment() { count.add(1, ordering: .relaxed) }
    var value: Int { count.load(ordering: .relaxed) }
}
