import ProcessSupport
import Testing
import VMMSys
#if canImport(Glibc)
import Glibc
#endif

@Suite struct ChildProcessTests {
    @Test func capturesOutputStatusAndMemory() throws {
        let r = try ChildProcess.run(["sh", "-c", "echo out; echo err >&2; exit 3"])
        #expect(r.output == "out\nerr\n")
        #expect(r.status == 3)
        #expect(r.peakRSSKiB > 0)
        // Wall time is measured around the child: at least as long as the child sleeps.
        let slept = try ChildProcess.run(["sleep", "0.2"])
        #expect(slept.status == 0 && slept.wallMilliseconds >= 200)
    }

    @Test func killedAfterTimeout() throws {
        let r = try ChildProcess.run(["sleep", "5"], timeoutSeconds: 1)
        #expect(r.status == 128 + 9)
    }

    @Test func missingProgramIsAnError() {
        #expect(throws: SystemError.self) { try ChildProcess.run(["/nonexistent/prog"]) }
    }

    @Test func noProgramIsAnErrorNotATrap() {
        #expect(throws: SystemError(operation: "posix_spawnp", arguments: "(no program)", errno: EINVAL)) {
            try ChildProcess.run([])
        }
    }
}
