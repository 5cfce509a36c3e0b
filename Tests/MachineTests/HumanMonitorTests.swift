import Synchronization
import Testing
@testable import Machine

@Suite struct HumanMonitorTests {
    final class Calls: Sendable {
        let quits = Atomic<Int>(0)
    }

    func monitor(_ calls: Calls) -> HumanMonitor {
        HumanMonitor(providers: .init(
            memoryTree: { $0 ? "FLAT\n" : "TREE\n" },
            ioeventfds: { "IOEVENTFDS\n" },
            status: { "VM status: running\n" },
            quit: { calls.quits.add(1, ordering: .relaxed) }))
    }

    @Test func infoCommands() {
        let m = monitor(Calls())
        #expect(m.execute("info mtree") == .output("TREE\n"))
        #expect(m.execute("  info   mtree -f ") == .output("FLAT\n"))
        #expect(m.execute("info ioeventfds") == .output("IOEVENTFDS\n"))
        #expect(m.execute("info status") == .output("VM status: running\n"))
        #expect(m.execute("") == .output(""))
    }

    @Test func errorsAreAnswersNotCrashes() {
        let m = monitor(Calls())
        #expect(m.execute("info") == .output("info: missing argument (mtree, ioeventfds, pci, status)\n"))
        #expect(m.execute("info mtree -x") == .output("info mtree: unsupported option '-x' (only -f)\n"))
        #expect(m.execute("info bogus") == .output("info: unknown item 'bogus' (mtree, ioeventfds, pci, status)\n"))
        #expect(m.execute("frobnicate") == .output("unknown command: 'frobnicate'\n"))
    }

    @Test func quitStopsTheVM() {
        let calls = Calls()
        let m = monitor(calls)
        #expect(m.execute("quit") == .quit)
        #expect(calls.quits.load(ordering: .relaxed) == 1)
    }
}
