import Testing
@testable import VMMSys

@Suite struct EventNotifierTests {
    @Test func emptyReadReturnsZero() throws {
        let n = try EventNotifier()
        #expect(n.testAndClear() == 0)
    }

    @Test func counterAccumulatesAndClears() throws {
        let n = try EventNotifier()
        n.set()
        n.set()
        n.set(5)
        #expect(n.testAndClear() == 7)
        #expect(n.testAndClear() == 0)
    }

    @Test func initialValue() throws {
        let n = try EventNotifier(initialValue: 3)
        #expect(n.testAndClear() == 3)
    }

    @Test func errorNamesOperationAndErrno() {
        let e = SystemError(operation: "KVM_IOEVENTFD", arguments: "addr=0xf4", errno: 17)
        #expect(e.description.hasPrefix("KVM_IOEVENTFD(addr=0xf4) failed: EEXIST (17)"))
    }
}
