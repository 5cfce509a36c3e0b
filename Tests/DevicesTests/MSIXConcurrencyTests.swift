import Foundation
import Memory
import Synchronization
import TestSupport
import Testing
import VMMSys
@testable import Devices

/// An `MSIController` that counts what `MSIX` asks of it and checks that it is used as a KVM
/// route + irqfd must be: every notifier disconnected once, never signalled after that.
final class CountingMSI: MSIController {
    struct Live { let notifier: EventNotifier; let address: UInt64; let data: UInt32 }
    struct Books {
        var connects = 0, disconnects = 0, unknownDisconnects = 0, sends = 0
        var live: [ObjectIdentifier: Live] = [:]
        /// Disconnected notifiers; their counters were drained into `deliveredBeforeRelease`.
        var retired: [EventNotifier] = []
        var deliveredBeforeRelease: UInt64 = 0
    }
    let books = Mutex(Books())

    func connect(address: UInt64, data: UInt32) -> EventNotifier? {
        sched_yield()                       // widen the window a racing caller could use
        guard let n = try? EventNotifier() else { return nil }
        books.withLock { $0.connects += 1; $0.live[ObjectIdentifier(n)] = Live(notifier: n, address: address, data: data) }
        return n
    }

    func disconnect(_ notifier: EventNotifier) {
        sched_yield()
        books.withLock { b in
            guard b.live.removeValue(forKey: ObjectIdentifier(notifier)) != nil else { b.unknownDisconnects += 1; return }
            b.disconnects += 1
            b.deliveredBeforeRelease += notifier.testAndClear()
            b.retired.append(notifier)
        }
    }

    func send(address: UInt64, data: UInt32) { books.withLock { $0.sends += 1 } }

    var snapshot: Books { books.withLock { $0 } }

    /// Interrupts delivered so far (through a live notifier, a released one, or `send`); reading
    /// clears the live notifiers' counters.
    func takeDelivered() -> (delivered: UInt64, afterRelease: UInt64) {
        books.withLock { b in
            var d = b.deliveredBeforeRelease + UInt64(b.sends)
            b.deliveredBeforeRelease = 0
            b.sends = 0
            for l in b.live.values { d += l.notifier.testAndClear() }
            let lost = b.retired.reduce(UInt64(0)) { $0 + $1.testAndClear() }
            return (d, lost)
        }
    }
}

/// Runs each body on its own thread, all released together; returns when all finished.
func runConcurrently(_ bodies: [@Sendable () -> Void]) {
    let ready = Atomic<Int>(0)
    let done = DispatchSemaphore(value: 0)
    for body in bodies {
        let t = Thread {
            ready.add(1, ordering: .acquiringAndReleasing)
            while ready.load(ordering: .acquiring) < bodies.count { sched_yield() }
            body()
            done.signal()
        }
        t.start()
    }
    for _ in bodies { done.wait() }
}

/// MSI-X under vCPUs and an I/O thread that race: table writes, message-control changes and
/// notifications at once must leave exactly one connection per unmasked vector, release
/// every other one, never signal a released notifier, and deliver a pending vector once.
/// QEMU serialises the same paths with the BQL (`msix_table_mmio_write()`,
/// `msix_write_config()`, `msix_notify()`).
@Suite struct MSIXConcurrencyTests {
    static let tableBase: UInt64 = 0xfebf_0000
    static let vectors = 4

    final class Rig: Sendable {
        let bus = TestBus()
        let msi = CountingMSI()
        let msix: MSIX
        /// The message-control register as config space holds it.
        let control = Atomic<UInt16>(0)
        init() {
            msix = MSIX(vectors: MSIXConcurrencyTests.vectors, controller: msi, name: "msix")
            bus.memory.addSubregion(msix.region, at: MSIXConcurrencyTests.tableBase)
        }
        func write(vector: Int, field: Int, _ value: UInt32) {
            bus.memorySpace.write(MSIXConcurrencyTests.tableBase + UInt64(vector * 16 + field * 4), value: UInt64(value), size: 4)
        }
        func read(vector: Int, field: Int) -> UInt32 {
            UInt32(truncatingIfNeeded: bus.memorySpace.read(MSIXConcurrencyTests.tableBase + UInt64(vector * 16 + field * 4), size: 4).value)
        }
        var pba: UInt32 { UInt32(truncatingIfNeeded: bus.memorySpace.read(MSIXConcurrencyTests.tableBase + MSIX.pbaOffset, size: 4).value) }
        /// What a config write does: store the register, then tell the MSI-X to re-read it.
        func setControl(_ value: UInt16) {
            control.store(value, ordering: .releasing)
            msix.controlChanged(reading: { control.load(ordering: .acquiring) })
        }
        /// Checks the invariant against the table as the guest sees it.
        func expectConnectionsMatchTable(sourceLocation: SourceLocation = #_sourceLocation) {
            let c = control.load(ordering: .acquiring)
            let fires = c & 0xc000 == 0x8000
            let b = msi.snapshot
            var want = 0
            for v in 0..<MSIXConcurrencyTests.vectors where fires && read(vector: v, field: 3) & 1 == 0 { want += 1 }
            #expect(b.live.count == want, "live connections \(b.live.count), unmasked vectors \(want)", sourceLocation: sourceLocation)
            #expect(msix.connectedVectors == want, sourceLocation: sourceLocation)
            #expect(b.connects - b.disconnects == b.live.count, sourceLocation: sourceLocation)
            #expect(b.unknownDisconnects == 0, sourceLocation: sourceLocation)
            // Each live connection carries some vector's current message.
            let messages = Set((0..<MSIXConcurrencyTests.vectors).map {
                "\(UInt64(read(vector: $0, field: 1)) << 32 | UInt64(read(vector: $0, field: 0)))/\(read(vector: $0, field: 2))"
            })
            let stale = b.live.values.filter { !messages.contains("\($0.address)/\($0.data)") }.count
            #expect(stale == 0, "\(stale) connections carry a message no vector has", sourceLocation: sourceLocation)
        }
    }

    @Test func stormLeavesOneConnectionPerUnmaskedVector() {
        let rig = Rig()
        let rounds = 3000
        let notifies = Atomic<Int>(0)
        func writer(_ seed: UInt64) -> @Sendable () -> Void {
            {
                var x = seed
                for _ in 0..<rounds {
                    x = x &* 6364136223846793005 &+ 1442695040888963407
                    let v = Int(x >> 33) % MSIXConcurrencyTests.vectors
                    switch (x >> 40) % 5 {
                    case 0: rig.write(vector: v, field: 0, 0xfee0_0000 | UInt32(truncatingIfNeeded: x >> 50) << 12)
                    case 1: rig.write(vector: v, field: 2, 0x40 | UInt32(truncatingIfNeeded: x >> 60))
                    case 2: rig.write(vector: v, field: 3, 1)
                    default: rig.write(vector: v, field: 3, 0)
                    }
                }
            }
        }
        func controller(_ seed: UInt64) -> @Sendable () -> Void {
            {
                var x = seed
                for _ in 0..<rounds {
                    x = x &* 6364136223846793005 &+ 1442695040888963407
                    rig.setControl([0x8000, 0xc000, 0x0000, 0x8000, 0x4000][Int(x >> 33) % 5])
                }
            }
        }
        let ioThread: @Sendable () -> Void = {
            for i in 0..<(2 * rounds) {
                rig.msix.notify(i % MSIXConcurrencyTests.vectors)
                notifies.add(1, ordering: .relaxed)
            }
        }
        runConcurrently([writer(1), writer(2), controller(3), controller(4), ioThread])

        rig.expectConnectionsMatchTable()
        let (delivered, lost) = rig.msi.takeDelivered()
        #expect(lost == 0, "\(lost) interrupts signalled on released notifiers")
        #expect(delivered <= UInt64(notifies.load(ordering: .relaxed)))
        #expect(rig.msi.snapshot.connects > 100, "the storm reached the controller")

        // Quiet again: every vector unmasked with its own message, then all masked.
        rig.setControl(0x8000)
        for v in 0..<MSIXConcurrencyTests.vectors {
            rig.write(vector: v, field: 0, 0xfee0_0000)
            rig.write(vector: v, field: 1, 0)
            rig.write(vector: v, field: 2, 0x50 + UInt32(v))
            rig.write(vector: v, field: 3, 0)
        }
        _ = rig.msi.takeDelivered()           // pending ones from the storm went out on unmask
        rig.expectConnectionsMatchTable()
        #expect(rig.msi.snapshot.live.count == MSIXConcurrencyTests.vectors)
        #expect(rig.pba == 0)
        for v in 0..<MSIXConcurrencyTests.vectors { rig.msix.notify(v) }
        #expect(rig.msi.takeDelivered() == (UInt64(MSIXConcurrencyTests.vectors), 0))
        rig.setControl(0)
        rig.expectConnectionsMatchTable()
        #expect(rig.msi.snapshot.live.isEmpty)
    }

    /// Messages notified while masked are held in the PBA; two vCPUs unmasking at once (one
    /// clearing Function Mask, one rewriting the vector's control) deliver each exactly once.
    /// QEMU: `msix_handle_mask_update()` clears the pending bit and calls `msix_notify()`.
    @Test func pendingVectorIsDeliveredOnceWhenUnmaskedConcurrently() {
        for _ in 0..<200 {
            let rig = Rig()
            for v in 0..<MSIXConcurrencyTests.vectors {
                rig.write(vector: v, field: 0, 0xfee0_0000)
                rig.write(vector: v, field: 2, 0x60 + UInt32(v))
                rig.write(vector: v, field: 3, 0)
            }
            rig.setControl(0xc000)                                     // enabled, function-masked
            for v in 0..<MSIXConcurrencyTests.vectors { for _ in 0..<3 { rig.msix.notify(v) } }
            #expect(rig.pba == 0xf)
            #expect(rig.msi.takeDelivered() == (0, 0))
            runConcurrently([
                { rig.setControl(0x8000) },
                { for v in 0..<MSIXConcurrencyTests.vectors { rig.write(vector: v, field: 3, 0) } },
            ])
            let (delivered, lost) = rig.msi.takeDelivered()
            #expect(lost == 0)
            #expect(delivered == UInt64(MSIXConcurrencyTests.vectors), "\(delivered) deliveries for 4 pending vectors")
            #expect(rig.pba == 0)
            rig.expectConnectionsMatchTable()
            let b = rig.msi.snapshot
            // One failing round is enough to report.
            if lost != 0 || delivered != UInt64(MSIXConcurrencyTests.vectors) || b.live.count != MSIXConcurrencyTests.vectors { break }
        }
    }

    /// A masked vector (MSI-X disabled counts as masked, as in QEMU's `msix_is_masked()`)
    /// keeps one pending bit however often it is notified; unmasking sends it once.
    @Test func pendingSurvivesDisableAndIsSentOnce() {
        let rig = Rig()
        rig.write(vector: 1, field: 0, 0xfee0_0000)
        rig.write(vector: 1, field: 2, 0x41)
        rig.write(vector: 1, field: 3, 0)
        for _ in 0..<5 { rig.msix.notify(1) }
        #expect(rig.pba == 0b10)
        rig.setControl(0x4000)                                         // function mask alone: still disabled
        #expect(rig.msi.snapshot.connects == 0)
        rig.setControl(0x8000)
        #expect(rig.pba == 0)
        #expect(rig.msi.takeDelivered() == (1, 0))
        rig.expectConnectionsMatchTable()
        // Rewriting the same message keeps the connection (no route change).
        let connects = rig.msi.snapshot.connects
        rig.write(vector: 1, field: 2, 0x41)
        rig.write(vector: 1, field: 0, 0xfee0_0000)
        #expect(rig.msi.snapshot.connects == connects)
        // A new message while unmasked takes effect at once.
        rig.write(vector: 1, field: 2, 0x42)
        #expect(rig.msi.snapshot.live.values.map(\.data) == [0x42])
        rig.expectConnectionsMatchTable()
        // Out-of-range vectors are ignored.
        rig.msix.notify(-1)
        rig.msix.notify(MSIXConcurrencyTests.vectors)
        #expect(rig.msi.takeDelivered() == (0, 0))
    }
}
