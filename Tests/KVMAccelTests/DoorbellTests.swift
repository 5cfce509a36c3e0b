import Synchronization
import Foundation
import KVM
import Machine
import Memory
import TestSupport
import Testing
import VMMSys
@testable import KVMAccel

/// The seed mechanism end to end on real KVM, driven through the memory API.
@Suite(.enabled(if: TestHost.kvmAvailable, "requires read/write access to /dev/kvm"))
struct DoorbellTests {
    let m: DoorbellMachine
    init() throws { m = try DoorbellMachine() }

    var exits: (pio: UInt64, mmio: UInt64) { (m.runners[0].counters.portIO, m.runners[0].counters.mmio) }

    @Test func everyPathCountsExitsAndSignals() throws {
        let n: UInt64 = 2000
        let results = try DoorbellBenchmark.run(writes: n, machine: m)
        let byName = Dictionary(uniqueKeysWithValues: results.map { ($0.path, $0) })
        for name in ["pio-no-eventfd", "pio-datamatch-miss", "mmio-no-eventfd"] {
            #expect(byName[name]?.userspaceExits == n && byName[name]?.eventfdSignals == 0, "\(name)")
        }
        for name in ["pio-wildcard-eventfd", "pio-datamatch-eventfd", "mmio-wildcard-eventfd", "mmio-datamatch-eventfd"] {
            #expect(byName[name]?.userspaceExits == 0 && byName[name]?.eventfdSignals == n, "\(name)")
        }
        // Exits reached the device's callback: 3 paths of n writes each.
        #expect(m.device.writes.load(ordering: .relaxed) == 3 * n)
        #expect(m.accelerator.ioeventfdCounts.refused == 0)
    }

    /// Datamatch compares the value the guest wrote, at its width: the exact value signals,
    /// its byte-swapped twin exits.
    @Test(arguments: [
        (DoorbellMachine.Routine.pio8, 1, UInt64(0xa5)), (.pio16, 2, 0x1234), (.pio32, 4, 0x1234_5678),
        (.mmio8, 1, 0xa5), (.mmio16, 2, 0x1234), (.mmio32, 4, 0x1234_5678), (.mmio64, 8, 0x1122_3344_5566_7788),
    ])
    func datamatchWidths(routine: DoorbellMachine.Routine, size: Int, value: UInt64) throws {
        let mmio = routine.rawValue >= DoorbellMachine.Routine.mmio8.rawValue
        let region = mmio ? m.mmioDoorbell : m.pioDoorbell
        let n = try EventNotifier()
        try region.addEventfd(offset: 0, size: size, matchData: true, data: value, notifier: n)
        let swapped = size == 1 ? value ^ 0xff : (value.byteSwapped >> UInt64(64 - 8 * size))
        let before = exits
        try m.run(routine, rax: value, rcx: 10, rdx: DoorbellMachine.doorbellPort, rbx: DoorbellMachine.doorbellMMIO)
        #expect(n.testAndClear() == 10)
        #expect(exits == before)
        try m.run(routine, rax: swapped, rcx: 7, rdx: DoorbellMachine.doorbellPort, rbx: DoorbellMachine.doorbellMMIO)
        #expect(n.testAndClear() == 0)
        #expect((mmio ? exits.mmio - before.mmio : exits.pio - before.pio) == 7)
        #expect(m.device.lastValue.load(ordering: .relaxed) == swapped)
    }

    @Test func deletingMakesWritesExitAgain() throws {
        let n = try EventNotifier()
        try m.pioDoorbell.addEventfd(offset: 0, size: 1, matchData: false, data: 0, notifier: n)
        try m.run(.pio8, rax: 1, rcx: 5, rdx: DoorbellMachine.doorbellPort)
        #expect(n.testAndClear() == 5 && m.device.writes.load(ordering: .relaxed) == 0)
        try m.pioDoorbell.delEventfd(offset: 0, size: 1, matchData: false, data: 0, notifier: n)
        try m.run(.pio8, rax: 1, rcx: 5, rdx: DoorbellMachine.doorbellPort)
        #expect(n.testAndClear() == 0 && m.device.writes.load(ordering: .relaxed) == 5)
    }

    @Test func movingTheRegionMovesTheIoeventfd() throws {
        let n = try EventNotifier()
        try m.mmioDoorbell.addEventfd(offset: 8, size: 4, matchData: false, data: 0, notifier: n)
        let before = m.accelerator.ioeventfdCounts
        let newBase: UInt64 = 0xd010_0000
        m.mmioDoorbell.withTransaction {
            m.mmioDoorbell.setAddress(0xd008_0000)
            m.mmioDoorbell.setAddress(newBase)
        }
        let after = m.accelerator.ioeventfdCounts
        #expect(after.assigned - before.assigned == 1 && after.deassigned - before.deassigned == 1)
        let unassignedBefore = m.memory.counters.unassignedWrites
        try m.run(.mmio32, rax: 9, rcx: 3, rbx: DoorbellMachine.doorbellMMIO + 8)   // old address
        #expect(n.testAndClear() == 0)
        #expect(m.memory.counters.unassignedWrites - unassignedBefore == 3)
        try m.run(.mmio32, rax: 9, rcx: 4, rbx: newBase + 8)
        #expect(n.testAndClear() == 4)
    }

    @Test(arguments: [DoorbellMachine.Routine.mmio8, .mmio16, .mmio32, .mmio64])
    func fastMMIOMatchesEveryWidth(routine: DoorbellMachine.Routine) throws {
        try #require(m.accelerator.anyLengthIoeventfds, "KVM_CAP_IOEVENTFD_ANY_LENGTH absent")
        let n = try EventNotifier()
        try m.mmioDoorbell.addEventfd(offset: 0x10, size: 0, matchData: false, data: 0, notifier: n)
        let before = exits.mmio
        try m.run(routine, rax: 0x0102_0304_0506_0708, rcx: 6, rbx: DoorbellMachine.doorbellMMIO + 0x10)
        #expect(n.testAndClear() == 6)
        #expect(exits.mmio == before)
    }

    /// A KVM_IOEVENTFD the kernel refuses (EEXIST: something else already claims that
    /// address/length/value) falls back to userspace signalling: every doorbell still arrives.
    @Test func refusedIoeventfdFallsBackToUserspace() throws {
        let squatter = try EventNotifier()
        try m.vm.ioeventfd(squatter, address: .pio(DoorbellMachine.doorbellPort + 4), length: 1, datamatch: 0x33)
        let n = try EventNotifier()
        try m.pioDoorbell.addEventfd(offset: 4, size: 1, matchData: true, data: 0x33, notifier: n)
        #expect(m.accelerator.ioeventfdCounts.refused == 1)
        #expect(m.io.refusedIoeventfds.count == 1)
        // The squatter takes the writes in the kernel; remove it so writes exit to us.
        try m.vm.ioeventfd(squatter, address: .pio(DoorbellMachine.doorbellPort + 4), length: 1, datamatch: 0x33, deassign: true)
        try m.run(.pio8, rax: 0x33, rcx: 25, rdx: DoorbellMachine.doorbellPort + 4)
        #expect(n.testAndClear() == 25)
        #expect(m.device.writes.load(ordering: .relaxed) == 0)
        #expect(m.io.counters.eventfdSignals == 25)
        // Deleting it forgets the refusal without a kernel deassign.
        let d = m.accelerator.ioeventfdCounts.deassigned
        try m.pioDoorbell.delEventfd(offset: 4, size: 1, matchData: true, data: 0x33, notifier: n)
        #expect(m.io.refusedIoeventfds.isEmpty && m.accelerator.ioeventfdCounts.deassigned == d)
    }

    @Test func ramIsSharedBothWaysAndROMIsReadOnly() throws {
        let mem = m.memory.guestMemory
        try mem.store(UInt64(0xfeed_f00d), at: 0x3008)
        try m.run(.ramReadWrite, rax: 0x1122_3344_5566_7788, rdx: DoorbellMachine.reportPort, rbx: 0x3000)
        #expect(try mem.load(UInt64.self, at: 0x3000) == 0x1122_3344_5566_7788)
        #expect(m.device.reports.withLock { $0 } == [0xfeed_f00d])

        let rom = try MemoryRegion.rom(name: "rom", size: 0x1000)
        m.memory.root.addSubregion(rom, at: 0x10_0000)
        try mem.store(UInt32(0xc0ff_ee00), at: 0x10_0000)
        try m.run(.load32, rdx: DoorbellMachine.reportPort, rbx: 0x10_0000)
        #expect(m.device.reports.withLock { $0.last } == 0xc0ff_ee00)
        let before = (exits.mmio, m.memory.counters.rejected)
        try m.run(.mmio32, rax: 0xdead_beef, rcx: 1, rbx: 0x10_0000)
        #expect(exits.mmio - before.0 == 1, "a ROM write exits as MMIO")
        #expect(m.memory.counters.rejected - before.1 == 1, "and is dropped")
        #expect(try mem.load(UInt32.self, at: 0x10_0000) == 0xc0ff_ee00)
    }

    @Test func stringIODispatchesEveryElement() throws {
        let mem = m.memory.guestMemory
        try mem.write(Array("Hello".utf8), at: 0x4000)
        try m.run(.outs, rcx: 5, rdx: DoorbellMachine.reportPort, rsi: 0x4000)
        #expect(m.device.reports.withLock { $0 } == Array("Hello".utf8).map(UInt64.init))
        m.device.inValue.store(0x5a, ordering: .relaxed)
        try m.run(.ins, rcx: 4, rdx: DoorbellMachine.reportPort, rdi: 0x4100)
        #expect(try mem.read(at: 0x4100, count: 5) == [0x5a, 0x5a, 0x5a, 0x5a, 0])
        m.device.inValue.store(0x8765_4321, ordering: .relaxed)
        try m.run(.in32, rdx: DoorbellMachine.reportPort, rbx: 0x4200)
        #expect(try mem.load(UInt32.self, at: 0x4200) == 0x8765_4321)
    }

    @Test func stopFromAnotherThread() throws {
        // A loop of 2^32-1 writes with an ioeventfd never exits by itself.
        let n = try EventNotifier()
        try m.pioDoorbell.addEventfd(offset: 0, size: 0, matchData: false, data: 0, notifier: n)
        try m.prepare(.pio8, rax: 1, rcx: 0xffff_ffff, rdx: DoorbellMachine.doorbellPort)
        let done = DispatchSemaphore(value: 0)
        let reason = Mutex<VCPUStopReason?>(nil)
        m.runners[0].start { r in reason.withLock { $0 = r }; done.signal() }
        // Stop it once the loop is seen running (its doorbells reach the eventfd).
        var rung: UInt64 = 0
        #expect(pollUntil { rung += n.testAndClear(); return rung > 0 })
        m.runners[0].stop()
        #expect(done.wait(timeout: .now() + 5) == .success)
        #expect(reason.withLock { $0 } == .stopped)
        // Stopped, not finished: far fewer than 2^32-1 doorbells rang.
        rung += n.testAndClear()
        #expect(rung > 0 && rung < 0xffff_ffff)
    }
}

@Suite(.enabled(if: TestHost.kvmAvailable, "requires read/write access to /dev/kvm"))
struct ConcurrencyAndInterruptTests {
    @Test func twoVCPUsWriteConcurrentlyAndNothingIsLost() throws {
        let m = try DoorbellMachine(vcpus: 2)
        let n: UInt64 = 20000
        let notifier = try EventNotifier()
        try m.mmioDoorbell.addEventfd(offset: 0x20, size: 4, matchData: false, data: 0, notifier: notifier)
        try m.prepare(.pio32, vcpu: 0, rax: 7, rcx: n, rdx: DoorbellMachine.doorbellPort)
        try m.prepare(.pio32, vcpu: 1, rax: 7, rcx: n, rdx: DoorbellMachine.doorbellPort)
        let group = DispatchGroup()
        for r in m.runners { group.enter(); r.start { _ in group.leave() } }
        #expect(group.wait(timeout: .now() + 60) == .success)
        #expect(m.device.writes.load(ordering: .relaxed) == 2 * n)
        // And through the kernel path, concurrently.
        try m.prepare(.mmio32, vcpu: 0, rax: 1, rcx: n, rbx: DoorbellMachine.doorbellMMIO + 0x20)
        try m.prepare(.mmio32, vcpu: 1, rax: 2, rcx: n, rbx: DoorbellMachine.doorbellMMIO + 0x20)
        for r in m.runners { group.enter(); r.start { _ in group.leave() } }
        #expect(group.wait(timeout: .now() + 60) == .success)
        #expect(notifier.testAndClear() == 2 * n)
    }

    /// irqfd: signalling the notifier injects IRQ 5 through the in-kernel PIC; the guest's
    /// handler counts and the guest reports each count. The only exits are those reports.
    @Test func irqfdInjectsWithoutAnExit() throws {
        let m = try DoorbellMachine(irqchip: true)
        let mem = m.memory.guestMemory
        // IDT at 0x7100 (vectors 0x20-0x2f), IDTR at 0x7000.
        func gate(_ handler: UInt64) -> [UInt8] {
            var g = [UInt8](repeating: 0, count: 16)
            g[0] = UInt8(handler & 0xff); g[1] = UInt8((handler >> 8) & 0xff)
            g[2] = UInt8(X86Boot.code64Selector); g[5] = 0x8e
            g[6] = UInt8((handler >> 16) & 0xff); g[7] = UInt8((handler >> 24) & 0xff)
            return g
        }
        var idt = [UInt8](repeating: 0, count: 0x30 * 16)
        for v in 0x20..<0x30 { idt.replaceSubrange(v * 16..<(v + 1) * 16, with: gate(v == 0x25 ? 0x1300 : 0x1340)) }
        try mem.write(idt, at: 0x7100)
        try mem.store(UInt16(idt.count - 1), at: 0x7000)
        try mem.store(UInt64(0x7100), at: 0x7002)
        try mem.store(UInt32(0), at: 0x2000)
        let irq = try EventNotifier()
        try m.accelerator.addIrqfd(irq, gsi: 5)
        try m.prepare(.interrupts, rdx: DoorbellMachine.reportPort)
        let done = DispatchSemaphore(value: 0)
        m.runners[0].start { _ in done.signal() }
        // The guest reports 0 once its PIC is programmed: from then on an edge is latched.
        #expect(pollUntil { m.device.reports.withLock { $0.count } >= 1 })
        let exitsBefore = m.runners[0].counters.portIO
        for i in 1...3 {
            irq.set()
            #expect(pollUntil { m.device.reports.withLock { $0.count } > i })
        }
        m.runners[0].stop()
        #expect(done.wait(timeout: .now() + 5) == .success)
        #expect(m.device.reports.withLock { $0 } == [0, 1, 2, 3])
        #expect(m.runners[0].counters.portIO - exitsBefore == 3, "only the guest's reports exit")
        try m.accelerator.removeIrqfd(irq, gsi: 5)
    }
}

@Suite(.enabled(if: TestHost.kvmAvailable, "requires read/write access to /dev/kvm"))
struct MSIRouteTests {
    /// A guest re-programming vectors forever must not run the GSI table out: freed GSIs are
    /// reused, lowest first.
    @Test func freedGSIsAreReused() throws {
        let m = try DoorbellMachine(irqchip: true)
        let a = try m.accelerator.addMSIRoute(address: 0xfee0_0000, data: 0x41)
        let b = try m.accelerator.addMSIRoute(address: 0xfee0_0000, data: 0x42)
        #expect(a == 24 && b == 25)
        for _ in 0..<5000 {
            try m.accelerator.removeMSIRoute(gsi: a)
            #expect(try m.accelerator.addMSIRoute(address: 0xfee0_0000, data: 0x43) == a)
        }
    }
}
