import CKVM
import TestSupport
import Testing
import VMMSys
@testable import KVM

/// The coalesced ring is shared with the kernel and filled with guest data, so the reader
/// trusts nothing in it: indices are checked against the capacity before indexing, entries
/// against lengths 1…8 and a 0/1 direction, and a drain takes only what was there when it
/// started. (QEMU's `kvm_flush_coalesced_mmio_buffer()` indexes with `first` unchecked.)
@Suite(.enabled(if: TestHost.kvmAvailable, "requires read/write /dev/kvm"))
struct CoalescedRingTests {
    func ring() throws -> (VCPU, CoalescedMMIORing) {
        let vm = try KVMSystem().createVM()
        let vcpu = try vm.createVCPU(id: 0)
        let ring = try #require(vcpu.coalescedRing, "KVM_CAP_COALESCED_MMIO absent")
        return (vcpu, ring)
    }

    @Test func geometryComesFromTheCapabilityAndThePageSize() throws {
        let (vcpu, ring) = try ring()
        #expect(ring.pageOffset == vcpu.vm.system.checkExtension(KVMCapability.coalescedMMIO))
        #expect(ring.capacity == (MappedMemory.pageSize - 8) / 24)
        #expect(vcpu.vm.coalescedMMIORing === ring)
        // A second vCPU maps the same ring pages; the VM keeps the first one's view.
        let other = try vcpu.vm.createVCPU(id: 1)
        #expect(other.coalescedRing !== ring && vcpu.vm.coalescedMMIORing === ring)
        #expect(ring.isEmpty && ring.drain { _ in Issue.record("empty ring drained something") } == (0, nil))
    }

    @Test func entriesAreReplayedOldestFirstAcrossTheWrap() throws {
        let (_, ring) = try ring()
        let last = ring.capacity - 1
        ring.plantEntry(last, address: 0xd000_0000, length: 4, pio: 0, data: [1, 2, 3, 4])
        ring.plantEntry(0, address: 0x70, length: 1, pio: 1, data: [0x8f])
        ring.plantEntry(1, address: 0xd000_0008, length: 8, pio: 0, data: [1, 2, 3, 4, 5, 6, 7, 8])
        ring.plant(first: UInt32(last), last: 2)
        #expect(!ring.isEmpty)
        var got: [CoalescedWrite] = []
        let (count, fault) = ring.drain { got.append($0) }
        #expect(count == 3 && fault == nil)
        #expect(got == [
            CoalescedWrite(address: 0xd000_0000, length: 4, isPIO: false, value: 0x0403_0201),
            CoalescedWrite(address: 0x70, length: 1, isPIO: true, value: 0x8f),
            CoalescedWrite(address: 0xd000_0008, length: 8, isPIO: false, value: 0x0807_0605_0403_0201),
        ])
        #expect(ring.header == (2, 2) && ring.isEmpty)
    }

    @Test func outOfRangeIndicesAreNotFollowed() throws {
        let (_, ring) = try ring()
        let cap = UInt32(ring.capacity)
        // `last` out of range: nothing read, nothing changed (the kernel owns `last`).
        for (first, last) in [(0, cap), (0, UInt32.max), (cap, cap + 1)] {
            ring.plant(first: first, last: last)
            let (count, fault) = ring.drain { _ in Issue.record("read through a bad index") }
            #expect(count == 0 && fault == .index(first: first, last: last, capacity: ring.capacity))
            #expect(ring.header == (first, last))
        }
        // Only `first` out of range (userspace owns it): reset to `last`, nothing read.
        ring.plant(first: UInt32.max, last: 3)
        let (count, fault) = ring.drain { _ in Issue.record("read through a bad index") }
        #expect(count == 0 && fault == .index(first: .max, last: 3, capacity: ring.capacity))
        #expect(ring.header == (3, 3))
    }

    @Test func malformedEntriesAreSkipped() throws {
        let (_, ring) = try ring()
        ring.plantEntry(0, address: 0x1000, length: 0, pio: 0, data: [])
        ring.plantEntry(1, address: 0x1000, length: 9, pio: 0, data: [])
        ring.plantEntry(2, address: 0x1000, length: .max, pio: 0, data: [])
        ring.plantEntry(3, address: 0x1000, length: 2, pio: 2, data: [1, 1])
        ring.plantEntry(4, address: 0x2000, length: 2, pio: 0, data: [0x34, 0x12])
        ring.plant(first: 0, last: 5)
        var got: [CoalescedWrite] = []
        let (count, fault) = ring.drain { got.append($0) }
        #expect(count == 1 && fault == .entry(index: 0, length: 0, pio: 0))
        #expect(got == [CoalescedWrite(address: 0x2000, length: 2, isPIO: false, value: 0x1234)])
        #expect(ring.header == (5, 5))
    }

    /// A drain takes the entries present at its start, at most a ring's worth, however the
    /// other side keeps appending (here: `last` moves on while the body runs).
    @Test func drainIsBoundedByWhatWasThere() throws {
        let (_, ring) = try ring()
        for i in 0..<4 { ring.plantEntry(i, address: UInt64(i), length: 1, pio: 0, data: [UInt8(i)]) }
        ring.plant(first: 0, last: 2)
        var seen = 0
        let (count, _) = ring.drain { _ in
            seen += 1
            ring.plant(first: ring.header.first, last: 4)   // "the kernel" appends two more
        }
        #expect(count == 2 && seen == 2 && ring.header == (2, 4))
    }
}

/// The dirty-log ioctls as the accelerator uses them, on a real-mode guest.
@Suite(.enabled(if: TestHost.kvmAvailable, "requires read/write /dev/kvm"))
struct DirtyLogIoctlTests {
    /// `mov byte [0x3000], al; mov byte [0x5001], al; hlt`
    static let code: [UInt8] = [0xa2, 0x00, 0x30, 0xa2, 0x01, 0x50, 0xf4]

    @Test func getDirtyLogReportsTheGuestsPages() throws {
        let g = try RealModeGuest(code: Self.code)
        // Not logging: ENOENT from the kernel. Unknown slot: refused before any ioctl.
        #expect(throws: SystemError(operation: "KVM_GET_DIRTY_LOG", arguments: "slot=0 pages=16", errno: ENOENT)) {
            _ = try g.vm.getDirtyLog(slot: 0)
        }
        #expect(throws: SystemError(operation: "KVM_GET_DIRTY_LOG", arguments: "slot=7: not a slot of this VM", errno: EINVAL)) {
            _ = try g.vm.getDirtyLog(slot: 7)
        }
        #expect(g.vm.slotPageCount(0) == 16 && g.vm.slotPageCount(7) == nil)
        try g.vm.setUserMemoryRegion(slot: 0, flags: .logDirtyPages, guestPhysicalAddress: 0, size: UInt64(g.ram.length),
                                     hostAddress: g.ram.hostAddress)
        _ = try g.runUntilHalt()
        // Legacy mode: the log is read and cleared in one call.
        #expect(try g.vm.getDirtyLog(slot: 0) == [1 << 3 | 1 << 5])
        #expect(try g.vm.getDirtyLog(slot: 0) == [0])
    }

    @Test func manualProtectionKeepsTheLogUntilCleared() throws {
        let g = try RealModeGuest(code: Self.code)
        guard try g.vm.enableManualDirtyLogProtection() else { return }
        try g.vm.setUserMemoryRegion(slot: 0, flags: .logDirtyPages, guestPhysicalAddress: 0, size: UInt64(g.ram.length),
                                     hostAddress: g.ram.hostAddress)
        _ = try g.runUntilHalt()
        #expect(try g.vm.getDirtyLog(slot: 0) == [1 << 3 | 1 << 5])
        #expect(try g.vm.getDirtyLog(slot: 0) == [1 << 3 | 1 << 5])      // still there
        try g.vm.clearDirtyLog(slot: 0, firstPage: 0, pages: 16, bitmap: [1 << 3])
        #expect(try g.vm.getDirtyLog(slot: 0) == [1 << 5])
        // A bitmap too short for the pages named is refused before the ioctl.
        #expect(throws: SystemError.self) { try g.vm.clearDirtyLog(slot: 0, firstPage: 0, pages: 65, bitmap: [0]) }
        // The kernel's own rule: the first page on a 64-page boundary.
        #expect(throws: SystemError.self) { try g.vm.clearDirtyLog(slot: 0, firstPage: 1, pages: 15, bitmap: [1]) }
    }
}
