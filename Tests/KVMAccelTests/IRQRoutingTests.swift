import Foundation
import KVM
import Synchronization
import TestSupport
import Testing
import VMMSys
@testable import KVMAccel

/// The GSI routing table on real KVM under concurrent route changes. The kernel has no call to
/// read the table back, so each GSI is probed: KVM_IRQ_LINE on an MSI route delivers its
/// message, which lands in the local APIC's IRR (read with KVM_GET_LAPIC) as the route's vector.
@Suite(.enabled(if: TestHost.kvmAvailable, "requires read/write access to /dev/kvm"))
struct IRQRoutingTests {
    let vm: VirtualMachine
    let vcpu: VCPU
    let accelerator: KVMAccelerator
    /// The APIC page with the APIC software-enabled and nothing requested.
    let idleAPIC: [UInt8]

    init() throws {
        vm = try KVMSystem().createVM()
        try vm.createIrqchip()
        vcpu = try vm.createVCPU(id: 0)
        accelerator = KVMAccelerator(vm: vm)
        var page = try vcpu.getLAPIC()
        page[0xf0] = 0xff                      // SVR: spurious vector 0xff...
        page[0xf1] |= 1                        // ...and APIC software-enabled
        try vcpu.setLAPIC(page)
        idleAPIC = try vcpu.getLAPIC()
    }

    /// The vectors the kernel's table makes GSI `gsi` raise (empty when it has no route).
    func probe(gsi: UInt32) throws -> [Int] {
        try vcpu.setLAPIC(idleAPIC)
        try vm.irqLine(irq: gsi, level: true)
        let page = try vcpu.getLAPIC()
        var vectors: [Int] = []
        for v in 0..<256 where page[0x200 + (v / 32) * 0x10 + (v % 32) / 8] & (1 << UInt8(v % 8)) != 0 { vectors.append(v) }
        return vectors
    }

    /// What the bookkeeping says GSI `gsi` raises.
    func expected(gsi: UInt32) -> [Int] {
        guard case .msi(_, _, _, let data)? = accelerator.routing.msiRoutes[gsi] else { return [] }
        return [Int(data & 0xff)]
    }

    @Test func concurrentAddAndRemoveLeaveTheKernelTableEqualToTheBookkeeping() throws {
        let threads = 4, keep = 3, rounds = 150
        let maxGSI = Atomic<UInt32>(0)
        let failures = Atomic<Int>(0)
        let accelerator = self.accelerator
        var bodies: [@Sendable () -> Void] = []
        for t in 0..<threads {
            bodies.append {
                var mine: [UInt32] = []
                var x = UInt64(t + 1)
                for _ in 0..<rounds {
                    x = x &* 6364136223846793005 &+ 1442695040888963407
                    if mine.count < keep || (mine.count < 2 * keep && x >> 63 == 0) {
                        // Fixed delivery to APIC ID 0, vector 0x20-0xfe.
                        let vector = 0x20 + UInt32(truncatingIfNeeded: x >> 40) % 0xdf
                        do {
                            let gsi = try accelerator.addMSIRoute(address: 0xfee0_0000, data: vector)
                            mine.append(gsi)
                            maxGSI.max(gsi, ordering: .relaxed)
                        } catch { failures.add(1, ordering: .relaxed) }
                    } else {
                        let gsi = mine.remove(at: Int(x >> 33) % mine.count)
                        do { try accelerator.removeMSIRoute(gsi: gsi) } catch { failures.add(1, ordering: .relaxed) }
                    }
                }
                while mine.count > keep { try? accelerator.removeMSIRoute(gsi: mine.removeLast()) }
                while mine.count < keep, let gsi = try? accelerator.addMSIRoute(address: 0xfee0_0000, data: 0xf0) { mine.append(gsi) }
            }
        }
        runConcurrently(bodies)

        #expect(failures.load(ordering: .relaxed) == 0)
        let routes = accelerator.routing.msiRoutes
        #expect(routes.count == threads * keep)
        #expect(accelerator.msiRouteGSIs == routes.keys.sorted())
        // Lowest free first: never more GSIs than routes alive at once (at most 2 * keep each).
        #expect(maxGSI.load(ordering: .relaxed) < IRQRouting.firstMSIGSI + UInt32(threads * 2 * keep))
        // The kernel's table, GSI by GSI, equals the bookkeeping.
        for gsi in IRQRouting.firstMSIGSI..<(IRQRouting.firstMSIGSI + UInt32(threads * 2 * keep) + 4) {
            #expect(try probe(gsi: gsi) == expected(gsi: gsi), "GSI \(gsi)")
        }
        // Freed GSIs are reused: with everything removed, the next route gets the first GSI.
        for gsi in routes.keys { try accelerator.removeMSIRoute(gsi: gsi) }
        #expect(accelerator.msiRouteGSIs.isEmpty)
        #expect(try probe(gsi: routes.keys.min() ?? IRQRouting.firstMSIGSI) == [])
        #expect(try accelerator.addMSIRoute(address: 0xfee0_0000, data: 0x77) == IRQRouting.firstMSIGSI)
        #expect(try probe(gsi: IRQRouting.firstMSIGSI) == [0x77])
    }

    /// Two threads changing routes at the same moment, many times over: each table reaches the
    /// kernel in the order it was built, so the kernel never ends with a stale one (a route
    /// missing that the bookkeeping has, or one present that it freed).
    @Test func racingUpdatesReachTheKernelInOrder() throws {
        let accelerator = self.accelerator
        let gsis = Mutex<[Int: UInt32]>([:])
        for trial in 0..<300 {
            let data: [UInt32] = [0x30 + UInt32(trial % 0x60), 0x90 + UInt32(trial % 0x60)]
            runConcurrently((0..<2).map { i in
                { if let g = try? accelerator.addMSIRoute(address: 0xfee0_0000, data: data[i]) { gsis.withLock { $0[i] = g } } }
            })
            let added = gsis.withLock { $0 }
            #expect(added.count == 2)
            for (i, g) in added { #expect(try probe(gsi: g) == [Int(data[i])], "trial \(trial): GSI \(g) after two adds") }
            runConcurrently(added.values.map { g in { try? accelerator.removeMSIRoute(gsi: g) } })
            for g in added.values { #expect(try probe(gsi: g) == [], "trial \(trial): GSI \(g) after two removes") }
            #expect(accelerator.msiRouteGSIs.isEmpty)
            if added.count != 2 || accelerator.routing.msiRoutes.count != 0 { break }
        }
    }

    /// A storm cannot run the table out: past `maxMSIRoutes` a route is refused (ENOSPC, the
    /// caller falls back to KVM_SIGNAL_MSI) and the kernel keeps the table it had.
    @Test func routeCountIsCapped() throws {
        #expect(KVMAccelerator.maxMSIRoutes == IRQRouting.maxMSIRoutes)
        var gsis: [UInt32] = []
        for _ in 0..<IRQRouting.maxMSIRoutes { gsis.append(try accelerator.addMSIRoute(address: 0xfee0_0000, data: 0x40)) }
        #expect(gsis == Array(IRQRouting.firstMSIGSI..<(IRQRouting.firstMSIGSI + UInt32(IRQRouting.maxMSIRoutes))))
        #expect(throws: SystemError.self) { try accelerator.addMSIRoute(address: 0xfee0_0000, data: 0x41) }
        #expect(accelerator.msiRouteGSIs.count == IRQRouting.maxMSIRoutes)
        #expect(try probe(gsi: gsis.last!) == [0x40])
        #expect(try probe(gsi: gsis.last! + 1) == [])
        try accelerator.removeMSIRoute(gsi: gsis[5])
        #expect(try accelerator.addMSIRoute(address: 0xfee0_0000, data: 0x42) == gsis[5])
        #expect(try probe(gsi: gsis[5]) == [0x42])
    }
}

/// Runs each body on its own thread, all released together; returns when all finished.
func runConcurrently(_ bodies: [@Sendable () -> Void]) {
    let ready = Atomic<Int>(0)
    let done = DispatchSemaphore(value: 0)
    for body in bodies {
        Thread {
            ready.add(1, ordering: .acquiringAndReleasing)
            while ready.load(ordering: .acquiring) < bodies.count { sched_yield() }
            body()
            done.signal()
        }.start()
    }
    for _ in bodies { done.wait() }
}
