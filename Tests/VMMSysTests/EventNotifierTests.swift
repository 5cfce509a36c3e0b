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

@Suite struct ChildProcessTests {
    @Test func capturesOutputStatusAndMemory() throws {
        let r = try ChildProcess.run(["sh", "-c", "echo out; echo err >&2; exit 3"])
        #expect(r.output == "out\nerr\n")
        #expect(r.status == 3)
        #expect(r.peakRSSKiB > 0)
        #expect(r.wallMilliseconds > 0)
    }

    @Test func killedAfterTimeout() throws {
        let r = try ChildProcess.run(["sleep", "5"], timeoutSeconds: 1)
        #expect(r.status == 128 + 9)
    }

    @Test func missingProgramIsAnError() {
        #expect(throws: SystemError.self) { try ChildProcess.run(["/nonexistent/prog"]) }
    }
}
