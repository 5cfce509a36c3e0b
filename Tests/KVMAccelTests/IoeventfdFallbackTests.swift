import KVM
import Machine
import Memory
import TestSupport
import Testing
import VMMSys
@testable import KVMAccel

/// The ioeventfd fallback, complete: a KVM_IOEVENTFD the kernel refuses is signalled by
/// userspace, reported (an EEXIST names what is in the way and both owners), retried when
/// that goes away; failed deassigns are reported; the retry list is bounded. QEMU aborts on
/// every one of these (`kvm_io_ioeventfd_add()`: "error adding ioeventfd").
@Suite(.enabled(if: TestHost.kvmAvailable, "requires read/write access to /dev/kvm"))
struct IoeventfdFallbackTests {
    let m: DoorbellMachine
    init() throws { m = try DoorbellMachine() }

    /// Two regions whose ioeventfds land on the same port, length and value: "dev-b" at 0x7000
    /// (8 ports), and a window onto "dev-a" over its first 4 ports at higher priority. Each
    /// has a 4-byte datamatch ioeventfd at its offset 2, so both are at port 0x7002 (an
    /// ioeventfd is kept where it overlaps a visible range, as QEMU's collection does).
    @Test func refusedIoeventfdIsRetriedWhenTheConflictGoesAway() throws {
        let log = WriteLog()
        let a = MemoryRegion.io(name: "dev-a", size: 8, ops: log.ops("a"))
        let b = MemoryRegion.io(name: "dev-b", size: 8, ops: log.ops("b"))
        let ioRoot = m.io.root
        ioRoot.addSubregion(b, at: 0x7000)
        ioRoot.addSubregion(MemoryRegion.alias(name: "a-window", target: a, offset: 0, size: 4), at: 0x7000, priority: 1)
        let na = try EventNotifier(), nb = try EventNotifier()
        let value: UInt64 = 0x1234_5678
        try a.addEventfd(offset: 2, size: 4, matchData: true, data: value, notifier: na)
        #expect(m.accelerator.ioeventfdCounts.refused == 0)
        try b.addEventfd(offset: 2, size: 4, matchData: true, data: value, notifier: nb)

        // Refused with EEXIST, reported with both owners, waiting for a retry.
        let counts = m.accelerator.ioeventfdCounts
        #expect(counts.refused == 1 && counts.conflicts == 1)
        let conflict = try #require(m.accelerator.ioeventfdConflicts.first)
        #expect(conflict.refusedOwner == "'dev-b' in I/O" && conflict.holderOwner == "'dev-a' in I/O")
        #expect(conflict.refused.notifier === nb && conflict.holder?.notifier === na && conflict.pio)
        #expect("\(conflict)".contains("conflicts with 0x7002 size=4 data=0x12345678"))
        #expect(m.accelerator.pendingIoeventfdRetries == 1 && m.io.refusedIoeventfds.count == 1)

        // The kernel gives the writes to the one it holds: no exits.
        let exits = m.runners[0].counters.portIO
        try m.run(.pio32, rax: value, rcx: 5, rdx: 0x7002)
        #expect(na.testAndClear() == 5 && nb.testAndClear() == 0)
        #expect(m.runners[0].counters.portIO == exits)

        // The holder goes away: the refused one is retried and the kernel takes it.
        try a.delEventfd(offset: 2, size: 4, matchData: true, data: value, notifier: na)
        let after = m.accelerator.ioeventfdCounts
        #expect(after.retried == 1 && after.deassigned == counts.deassigned + 1)
        #expect(m.accelerator.pendingIoeventfdRetries == 0 && m.io.refusedIoeventfds.isEmpty)
        try m.run(.pio32, rax: value, rcx: 7, rdx: 0x7002)
        #expect(nb.testAndClear() == 7 && na.testAndClear() == 0)
        #expect(m.runners[0].counters.portIO == exits, "signalled by the kernel, not by userspace")
        #expect(log.all.isEmpty)
    }

    /// An EEXIST against an ioeventfd registered behind the accelerator's back is reported
    /// without a holder; the refused one still works through userspace.
    @Test func conflictWithAForeignIoeventfdIsReported() throws {
        let squatter = try EventNotifier()
        try m.vm.ioeventfd(squatter, address: .pio(DoorbellMachine.doorbellPort), length: 2, datamatch: nil)
        let n = try EventNotifier()
        try m.pioDoorbell.addEventfd(offset: 0, size: 2, matchData: true, data: 0x55, notifier: n)
        let conflict = try #require(m.accelerator.ioeventfdConflicts.first)
        #expect(conflict.holder == nil && conflict.holderOwner == nil && conflict.refusedOwner == "'doorbell-pio' in I/O")
        #expect("\(conflict)".hasSuffix("conflicts with an ioeventfd not registered through this accelerator"))
        try m.vm.ioeventfd(squatter, address: .pio(DoorbellMachine.doorbellPort), length: 2, datamatch: nil, deassign: true)
        try m.run(.pio16, rax: 0x55, rcx: 3, rdx: DoorbellMachine.doorbellPort)
        #expect(n.testAndClear() == 3)
    }

    /// A deassign the kernel refuses (here: someone removed the ioeventfd behind our back)
    /// is counted and logged, and forgotten.
    @Test func failedDeassignIsReported() throws {
        let n = try EventNotifier()
        try m.mmioDoorbell.addEventfd(offset: 0x40, size: 4, matchData: false, data: 0, notifier: n)
        try m.vm.ioeventfd(n, address: .mmio(DoorbellMachine.doorbellMMIO + 0x40), length: 4, deassign: true)
        let before = m.accelerator.ioeventfdCounts
        try m.mmioDoorbell.delEventfd(offset: 0x40, size: 4, matchData: false, data: 0, notifier: n)
        let after = m.accelerator.ioeventfdCounts
        #expect(after.deassignFailures == before.deassignFailures + 1 && after.deassigned == before.deassigned)
        // Adding it again works (the registry forgot it).
        try m.mmioDoorbell.addEventfd(offset: 0x40, size: 4, matchData: false, data: 0, notifier: n)
        #expect(m.accelerator.ioeventfdCounts.assigned == after.assigned + 1)
    }

    /// Refusals past the cap are counted, not listed, never retried; deleting everything
    /// empties the list. Each refusal is an EEXIST against a wildcard squatter.
    @Test func retryListIsBounded() throws {
        let limit = AddressSpace.refusedIoeventfdLimit
        let port = DoorbellMachine.doorbellPort + 4
        let squatter = try EventNotifier()
        try m.vm.ioeventfd(squatter, address: .pio(port), length: 4, datamatch: nil)
        let n = try EventNotifier()
        let total = limit + 6
        for i in 0..<total {
            try m.pioDoorbell.addEventfd(offset: 4, size: 4, matchData: true, data: UInt64(i), notifier: n)
        }
        let counts = m.accelerator.ioeventfdCounts
        #expect(counts.refused == total && counts.conflicts == total)
        #expect(m.accelerator.pendingIoeventfdRetries == limit && counts.droppedRefusals == 6)
        #expect(m.io.refusedIoeventfds.count == limit && m.io.unrecordedRefusals == 6)
        #expect(m.accelerator.ioeventfdConflicts.count == IoeventfdRegistry.recordedConflicts)
        for i in 0..<total {
            try m.pioDoorbell.delEventfd(offset: 4, size: 4, matchData: true, data: UInt64(i), notifier: n)
        }
        #expect(m.accelerator.pendingIoeventfdRetries == 0)
        try m.vm.ioeventfd(squatter, address: .pio(port), length: 4, datamatch: nil, deassign: true)
    }
}
