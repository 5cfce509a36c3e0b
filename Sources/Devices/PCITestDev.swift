import Memory
import Synchronization
import VMMSys

/// The PCI device guests use to measure the cost of each I/O exit path (kvm-unit-tests'
/// `pci-testdev`): vendor 0x1b36, device 0x0005, revision 0, class 0xff00, interrupt pin 0,
/// BAR0 4 KiB MMIO ("pci-testdev-mmio"), BAR1 256 I/O ports ("pci-testdev-portio").
///
/// Six tests, index i = type * 3 + t (type 0 "mmio", 1 "portio"; t 0 "no-eventfd",
/// 1 "wildcard-eventfd", 2 "datamatch-eventfd"), named "TYPE-TEST". Test i listens at offset
/// (2048 for mmio, 128 for portio) + i with width 1 and data 0xCE for the wildcard test, 0xFA
/// (matched) for the others, as QEMU's pci-testdev.c.
/// Each BAR shows, from offset 0, the current test's header
/// `u8 test; u8 width; u8 pad[2]; u32 offset; u8 data; u8 pad[3]; u32 count; char name[]`
/// (little-endian; 0 beyond the header, at its final byte, or when no test runs).
///
/// Writing t to offset 0 of a BAR stops the current test (deleting its ioeventfd) and starts
/// test (that BAR's type, t): count is reset and, except for "no-eventfd", an ioeventfd is
/// added at the test's offset — size 1, or size 0 (any length, KVM's fast MMIO) for the
/// wildcard MMIO test when `fastMMIO` is set; matching data only for "datamatch". A t >= 3
/// only stops. A write at the current test's offset that reaches the device (was not taken
/// by an ioeventfd) with the test's width and, for datamatch, its data, increments count.
/// Reads clear the current test's eventfd counter. The callbacks implement only byte access
/// (valid 1-4): wider accesses are split and assembled by the memory core.
/// QEMU: pci-testdev (hw/misc/pci-testdev.c).
public final class PCITestDev: PCIDevice, @unchecked Sendable {
    /// BAR0.
    public let mmioRegion: MemoryRegion
    /// BAR1.
    public let portioRegion: MemoryRegion
    /// Whether the wildcard MMIO test registers a zero-length ioeventfd
    /// (KVM_CAP_IOEVENTFD_ANY_LENGTH).
    public let fastMMIO: Bool

    /// Tests per BAR: no-eventfd, wildcard-eventfd, datamatch-eventfd.
    public static let testsPerType = 3
    /// Tests in all (two BARs).
    public static let testCount = 6
    /// The byte the datamatch and no-eventfd tests expect.
    public static let datamatchData: UInt8 = 0xfa
    /// The byte the wildcard test is described with (any value matches it).
    public static let nomatchData: UInt8 = 0xce
    /// Every test listens to 1-byte writes.
    public static let accessWidth = 1

    /// One test's fixed description. QEMU: IOTest.
    public struct Test: Sendable {
        /// Index i = type * 3 + t.
        public let index: Int
        /// `TYPE-TEST`, e.g. `portio-datamatch-eventfd`.
        public let name: String
        /// In BAR0 (MMIO) rather than BAR1 (port I/O).
        public let isMMIO: Bool
        /// Where it listens within its BAR.
        public let offset: UInt32
        /// The data byte in its header.
        public let data: UInt8
        /// Whether its ioeventfd matches `data` only.
        public let matchData: Bool
        /// The ioeventfd's size (0 = any length).
        public let eventfdSize: Int
        /// Nil for the "no-eventfd" tests.
        public let notifier: EventNotifier?
    }

    /// The six tests, by index.
    public let tests: [Test]

    struct State {
        var current: Int?
        var counts = [UInt32](repeating: 0, count: PCITestDev.testCount)
    }

    private let state = Mutex(State())
    /// The guest starts and stops tests at will, so a failing ioeventfd change is logged
    /// rate-limited.
    private let errorLog = RateLimitedLog()

    /// - Parameter fastMMIO: whether the accelerator supports any-length ioeventfds (QEMU:
    ///   `kvm_ioeventfd_any_length_enabled()`); the wildcard MMIO test then uses size 0.
    public init(fastMMIO: Bool = false) throws(SystemError) {
        self.fastMMIO = fastMMIO
        let owner = RegionOwner<PCITestDev>()
        func ops(_ type: Int) -> MemoryRegionOps {
            owner.ops(read: PCITestDev.ioRead, write: { d in { d.ioWrite(type, $0, $1, $2) } }, unbound: 0, implementation: .bytes)
        }
        mmioRegion = .io(name: "pci-testdev-mmio", size: 4096, ops: ops(0))
        portioRegion = .io(name: "pci-testdev-portio", size: 256, ops: ops(1))
        var tests: [Test] = []
        for i in 0..<PCITestDev.testCount {
            let isMMIO = i < PCITestDev.testsPerType
            let t = i % PCITestDev.testsPerType
            let testName = ["no-eventfd", "wildcard-eventfd", "datamatch-eventfd"][t]
            // QEMU: match_data = (test != "wildcard-eventfd"): the no-eventfd and datamatch
            // tests both expect 0xFA and count only that value; the wildcard test takes 0xCE.
            let matchData = t != 1
            tests.append(Test(
                index: i, name: (isMMIO ? "mmio-" : "portio-") + testName, isMMIO: isMMIO,
                offset: UInt32((isMMIO ? 2048 : 128) + i * PCITestDev.accessWidth),
                data: matchData ? PCITestDev.datamatchData : PCITestDev.nomatchData,
                matchData: matchData,
                eventfdSize: fastMMIO && isMMIO && t == 1 ? 0 : PCITestDev.accessWidth,
                notifier: t == 0 ? nil : try EventNotifier()))
        }
        self.tests = tests
        super.init(vendorID: 0x1b36, deviceID: 0x0005, classCode: 0x00_ff_00, revision: 0, interruptPin: 0)
        registerBAR(0, region: mmioRegion, kind: .memory32)
        registerBAR(1, region: portioRegion, kind: .io)
        owner.set(self)
    }

    /// The running test's index, if any.
    public var currentTest: Int? { state.withLock { $0.current } }

    /// Test `index`'s count of writes that reached the device.
    public func count(ofTest index: Int) -> UInt32 {
        guard (0..<PCITestDev.testCount).contains(index) else { return 0 }
        return state.withLock { $0.counts[index] }
    }

    /// The header bytes of test `index` as the guest sees them (including the NUL).
    public func header(ofTest index: Int) -> [UInt8] {
        guard (0..<PCITestDev.testCount).contains(index) else { return [] }
        return state.withLock { s in headerBytes(index, count: s.counts[index]) }
    }

    private func headerBytes(_ index: Int, count: UInt32) -> [UInt8] {
        let t = tests[index]
        var h: [UInt8] = [UInt8(index), UInt8(PCITestDev.accessWidth), 0, 0]
        h += (0..<4).map { UInt8(truncatingIfNeeded: t.offset >> (8 * UInt32($0))) }
        h += [t.data, 0, 0, 0]
        h += (0..<4).map { UInt8(truncatingIfNeeded: count >> (8 * UInt32($0))) }
        h += Array(t.name.utf8) + [0]
        return h
    }

    private func region(of test: Test) -> MemoryRegion { test.isMMIO ? mmioRegion : portioRegion }

    // MARK: Guest interface

    func ioRead(_ offset: UInt64, _ size: Int) -> UInt64 {
        state.withLock { s in
            guard let i = s.current else { return 0 }
            let h = headerBytes(i, count: s.counts[i])
            // QEMU returns 0 when addr + size >= bufsize (so the final NUL reads 0 too).
            guard offset < UInt64(h.count), offset + UInt64(size) < UInt64(h.count) else { return 0 }
            tests[i].notifier?.testAndClear()
            var v: UInt64 = 0
            for k in 0..<size { v |= UInt64(h[Int(offset) + k]) << (8 * UInt64(k)) }
            return v
        }
    }

    func ioWrite(_ type: Int, _ offset: UInt64, _ value: UInt64, _ size: Int) {
        state.withLock { s in
            if offset == 0 {
                stop(&s)
                guard value < UInt64(PCITestDev.testsPerType) else { return }
                start(&s, type * PCITestDev.testsPerType + Int(value))
                return
            }
            guard let i = s.current else { return }
            let t = tests[i]
            guard offset == UInt64(t.offset), size == PCITestDev.accessWidth else { return }
            if t.matchData && value != UInt64(t.data) { return }
            s.counts[i] &+= 1
        }
    }

    /// QEMU: pci_testdev_start().
    private func start(_ s: inout State, _ index: Int) {
        let t = tests[index]
        s.counts[index] = 0
        if let n = t.notifier {
            n.testAndClear()
            do {
                try region(of: t).addEventfd(offset: UInt64(t.offset), size: t.eventfdSize,
                                             matchData: t.matchData, data: UInt64(t.data), notifier: n)
            } catch {
                errorLog.log({ devicesLogger.error("\($0)") }) { "pci-testdev: cannot start \(t.name): \(error)" }
                return
            }
        }
        s.current = index
    }

    /// QEMU: pci_testdev_reset() / pci_testdev_stop().
    private func stop(_ s: inout State) {
        guard let i = s.current else { return }
        s.current = nil
        let t = tests[i]
        guard let n = t.notifier else { return }
        do {
            try region(of: t).delEventfd(offset: UInt64(t.offset), size: t.eventfdSize,
                                         matchData: t.matchData, data: UInt64(t.data), notifier: n)
        } catch {
            errorLog.log({ devicesLogger.error("\($0)") }) { "pci-testdev: cannot stop \(t.name): \(error)" }
        }
    }
}
