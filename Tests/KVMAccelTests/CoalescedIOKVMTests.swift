import Foundation
import Memory
import Synchronization
import TestSupport
import Testing
import VMMSys
@testable import KVM
@testable import KVMAccel

/// Coalesced MMIO and PIO through KVM: `memory_region_add_coalescing()` becomes a kernel zone
/// (QEMU: `kvm_coalesce_mmio_region()`, `kvm_coalesce_pio_add()`), the guest's writes there
/// are buffered in the ring instead of exiting, and the ring is replayed in order before any
/// other exit is handled and when the vCPU stops (`kvm_flush_coalesced_mmio_buffer()`).
/// Exits are counted with the vCPU's exit counters; what arrives is each device's log.
@Suite(.enabled(if: TestHost.kvmAvailable, "requires read/write access to /dev/kvm"))
struct CoalescedIOKVMTests {
    static let mmioBase: UInt64 = 0xd000_0000
    static let port: UInt64 = 0x7000

    /// A TinyVM with an MMIO device at 0xd0000000 and a port device at 0x7000, both logging
    /// into one shared log, neither coalesced yet.
    func machine() throws -> (TinyVM, MemoryRegion, MemoryRegion, WriteLog) {
        let t = try TinyVM()
        let log = WriteLog()
        let mmio = MemoryRegion.io(name: "mmio", size: 0x1000, ops: log.ops("mmio"))
        let pio = MemoryRegion.io(name: "pio", size: 8, ops: log.ops("pio"))
        t.root.addSubregion(mmio, at: Self.mmioBase)
        t.ioRoot.addSubregion(pio, at: Self.port)
        return (t, mmio, pio, log)
    }

    @Test func manyWritesMakeFarFewerExitsAndAllArriveInOrder() throws {
        let (t, mmio, _, log) = try machine()
        try #require(t.accelerator.coalescedMMIO, "KVM_CAP_COALESCED_MMIO absent")
        let n = 2000
        let expected = (0..<n).map { "mmio+16:\($0)/4" }

        // Not coalesced: one exit per write.
        try t.run(GuestCode.countingStores, rax: 0, rbx: Self.mmioBase + 0x10, rcx: UInt64(n))
        #expect(t.runner.counters.mmio == UInt64(n))
        #expect(log.all == expected)

        // Coalesced: the kernel buffers them; an exit happens only when the ring is full.
        log.entries.withLock { $0 = [] }
        mmio.addCoalescing(offset: 0, size: 0x1000)
        #expect(t.accelerator.coalescedZones == 1)
        let before = t.runner.counters.mmio
        try t.run(GuestCode.countingStores, rax: 0, rbx: Self.mmioBase + 0x10, rcx: UInt64(n))
        let exits = t.runner.counters.mmio - before
        let capacity = try #require(t.vm.coalescedMMIORing).capacity
        #expect(exits <= UInt64(n / capacity + 1), "\(exits) MMIO exits for \(n) coalesced writes")
        #expect(exits * 20 < UInt64(n))
        #expect(log.all == expected)
        #expect(t.accelerator.coalescedWritesDrained >= UInt64(n) - exits)

        // Cleared: back to one exit per write, and the zone is gone from the kernel.
        mmio.clearCoalescing()
        #expect(t.accelerator.coalescedZones == 0)
        let again = t.runner.counters.mmio
        try t.run(GuestCode.countingStores, rax: 0, rbx: Self.mmioBase + 0x10, rcx: 10)
        #expect(t.runner.counters.mmio - again == 10)
    }

    /// Coalesced MMIO writes, then a port write: the port device must see its write after all
    /// of them (program order). None of the MMIO writes exits (fewer than the ring holds), so
    /// only the drain before the port exit is handled can deliver them first.
    @Test func ringIsDrainedBeforeAPortExitIsHandled() throws {
        let (t, mmio, _, log) = try machine()
        try #require(t.accelerator.coalescedMMIO, "KVM_CAP_COALESCED_MMIO absent")
        mmio.addCoalescing(offset: 0, size: 0x1000)
        let n = 50
        try t.run(GuestCode.countingStoresThenOut, rax: 100, rbx: Self.mmioBase, rcx: UInt64(n), rdx: Self.port)
        #expect(t.runner.counters.mmio == 0)
        #expect(t.runner.counters.portIO == 1)
        #expect(log.all == (0..<n).map { "mmio+0:\(100 + $0)/4" } + ["pio+0:\(100 + n)/4"])
    }

    /// Coalesced PIO (`KVM_REGISTER_COALESCED_MMIO` with pio=1): port writes buffered, then an
    /// MMIO store that exits; the drained port writes arrive first.
    @Test func coalescedPortWritesArriveBeforeALaterMMIOExit() throws {
        let (t, _, pio, log) = try machine()
        try #require(t.accelerator.coalescedPIO, "KVM_CAP_COALESCED_PIO absent")
        pio.addCoalescing(offset: 0, size: 8)
        #expect(t.accelerator.coalescedZones == 1)
        let n = 40
        try t.run(GuestCode.countingOutsThenStore, rax: 7, rbx: Self.mmioBase + 8, rcx: UInt64(n), rdx: Self.port)
        #expect(t.runner.counters.portIO == 0)
        #expect(t.runner.counters.mmio == 1)
        #expect(log.all == (0..<n).map { "pio+0:\(7 + $0)/4" } + ["mmio+8:\(7 + n)/4"])
    }

    /// A vCPU stopped from another thread while its writes sit in the ring (it spins after
    /// them, never exiting) replays them as it stops.
    @Test func ringIsDrainedWhenTheVCPUStops() throws {
        let (t, mmio, _, log) = try machine()
        try #require(t.accelerator.coalescedMMIO, "KVM_CAP_COALESCED_MMIO absent")
        mmio.addCoalescing(offset: 0, size: 0x1000)
        let ring = try #require(t.vm.coalescedMMIORing)
        let n = 30
        // countingStores with its HLT replaced by `jmp .` (0xeb 0xfe).
        let spin = Array(GuestCode.countingStores.dropLast()) + [0xeb, 0xfe]
        try t.prepare(spin, rax: 1, rbx: Self.mmioBase + 4, rcx: UInt64(n))
        let done = DispatchSemaphore(value: 0)
        let reason = Mutex<VCPUStopReason?>(nil)
        t.runner.start { r in reason.withLock { $0 = r }; done.signal() }
        // Wait until the kernel holds all n writes (the guest then spins).
        #expect(pollUntil { ring.header.last == UInt32(n) })
        #expect(log.all.isEmpty)
        t.runner.stop()
        #expect(done.wait(timeout: .now() + 10) == .success)
        #expect(reason.withLock { $0 } == .stopped)
        #expect(log.all == (0..<n).map { "mmio+4:\(1 + $0)/4" })
        #expect(ring.isEmpty)
    }

    /// A ring whose indices cannot be trusted puts coalescing in an error state, once: the
    /// zones are unregistered, so the guest's writes exit one by one and still all arrive.
    @Test func corruptRingTurnsCoalescingOff() throws {
        let (t, mmio, _, log) = try machine()
        try #require(t.accelerator.coalescedMMIO, "KVM_CAP_COALESCED_MMIO absent")
        mmio.addCoalescing(offset: 0, size: 0x1000)
        let ring = try #require(t.vm.coalescedMMIORing)
        ring.plant(first: 0, last: UInt32(ring.capacity) + 5)
        t.accelerator.flushCoalescedIO()
        #expect(t.accelerator.coalescedZones == 0)
        #expect(log.all.isEmpty)
        ring.plant(first: 0, last: 0)
        try t.run(GuestCode.countingStores, rax: 0, rbx: Self.mmioBase, rcx: 20)
        #expect(t.runner.counters.mmio == 20)
        #expect(log.all == (0..<20).map { "mmio+0:\($0)/4" })
        // Coalescing stays off for ranges added later.
        mmio.addCoalescing(offset: 0x800, size: 0x10)
        #expect(t.accelerator.coalescedZones == 0)
    }

    /// A range longer than KVM's 32-bit zone length is left to ordinary exits (QEMU truncates
    /// the length); writes still arrive.
    @Test func overlongRangeIsNotRegistered() throws {
        let t = try TinyVM()
        let log = WriteLog()
        let big = MemoryRegion.io(name: "big", size: UInt128(1) << 33, ops: log.ops("big"))
        t.root.addSubregion(big, at: 0x8000_0000)
        big.setCoalescing()
        #expect(t.accelerator.coalescedZones == 0)
        try t.run(GuestCode.countingStores, rax: 5, rbx: 0x8000_0000, rcx: 3)
        #expect(log.all == ["big+0:5/4", "big+0:6/4", "big+0:7/4"])
    }
}
