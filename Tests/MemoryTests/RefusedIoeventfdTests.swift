import Testing
import VMMSys
@testable import Memory

/// The address space's list of ioeventfds the accelerator refused cannot grow without bound:
/// a refusal is forgotten when its ioeventfd is deleted, and past `refusedIoeventfdLimit`
/// refusals are only counted — userspace then checks every write, so doorbells still arrive.
@Suite struct RefusedIoeventfdTests {
    let system = MemorySystem()

    func fd(_ start: UInt64, _ n: EventNotifier) -> MemoryRegionIoeventfd {
        MemoryRegionIoeventfd(start: start, size: 1, matchData: true, data: 0xfa, notifier: n)
    }

    /// A guest moving BARs onto each other over and over refuses and deletes the same
    /// ioeventfds: the list only churns.
    @Test func refusedThenDeletedIsForgotten() throws {
        let s = AddressSpace(root: .container(name: "root", size: 0x10000), name: "io", system: system)
        s.acceleratorHandlesIoeventfds = true
        let n = try EventNotifier()
        for i in 0..<10_000 {
            let e = fd(0x100 + UInt64(i % 7), n)
            s.ioeventfdRefused(e)
            #expect(s.refusedIoeventfds.count == 1)
            #expect(s.ioeventfdAccepted(e))
        }
        #expect(s.refusedIoeventfds.isEmpty && s.unrecordedRefusals == 0)
        #expect(!s.userspaceSignalsEventfds)
        #expect(!s.ioeventfdAccepted(fd(0x100, n)))          // never refused: the kernel has it
    }

    @Test func listIsCappedAndWritesStillSignal() throws {
        let root = MemoryRegion.container(name: "root", size: 0x10000)
        let dev = MemoryRegion.io(name: "dev", size: 0x100, ops: AccessRecorder().ops(valid: .init(), impl: .init()))
        root.addSubregion(dev, at: 0x100)
        let s = AddressSpace(root: root, name: "io", system: system)
        s.acceleratorHandlesIoeventfds = true
        let n = try EventNotifier(), other = try EventNotifier()
        try dev.addEventfd(offset: 0x10, size: 1, matchData: true, data: 0xfa, notifier: n)
        // Fill the list with refusals of other ioeventfds...
        let limit = AddressSpace.refusedIoeventfdLimit
        for i in 0..<limit { s.ioeventfdRefused(fd(0x1000 + UInt64(i), other)) }
        #expect(s.refusedIoeventfds.count == limit && s.unrecordedRefusals == 0)
        // ...then the one at 0x110 is refused past the cap: counted, not listed.
        s.ioeventfdRefused(fd(0x110, n))
        s.ioeventfdRefused(fd(0x111, n))
        #expect(s.refusedIoeventfds.count == limit && s.unrecordedRefusals == 2)
        s.write(0x110, value: 0xfa, size: 1)
        #expect(n.testAndClear() == 1)
        // Forgetting every listed refusal leaves userspace checking writes (the unlisted ones
        // cannot be told apart), so the doorbell still arrives.
        for i in 0..<limit { #expect(s.ioeventfdAccepted(fd(0x1000 + UInt64(i), other))) }
        #expect(!s.ioeventfdAccepted(fd(0x110, n)))
        #expect(s.refusedIoeventfds.isEmpty && s.unrecordedRefusals == 2)
        s.write(0x110, value: 0xfa, size: 1)
        #expect(n.testAndClear() == 1)
    }
}
