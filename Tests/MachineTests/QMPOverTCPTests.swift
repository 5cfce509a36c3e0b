import Foundation
import ProcessSupport
import Testing
import VMMSys

/// `-qmp tcp:127.0.0.1:PORT,server=on,wait=off` from the real executable: greeting,
/// negotiation, a query while the guest holds, and `quit` ending the process with status 0 after
/// the SHUTDOWN event, as QEMU does.
@Suite(.enabled(if: Harness.kvmAvailable, "requires read/write access to /dev/kvm"),
       .enabled(if: GuestKernels.toolchainAvailable, "needs gcc, as and ld to build the test kernels"))
struct QMPOverTCPTests {
    func line(_ c: SocketConnection) throws -> String {
        var bytes: [UInt8] = []
        while bytes.last != 0x0a {
            let b = try c.read(maxBytes: 1)
            if b.isEmpty { break }
            bytes += b
        }
        return String(decoding: bytes, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
    }

    @Test func vmmServesQMPOverTCP() throws {
        let vmm = try #require(Harness.vmmPath)
        let kernel = try GuestKernels.path("hello")
        // A port from this process's id, away from the ephemeral range's usual start.
        let port = 20000 + Int(getpid() % 20000)
        let vm = try BackgroundProcess([vmm, "-machine", "accel=kvm", "-nodefaults", "-display", "none",
                                        "-serial", "stdio", "-qmp", "tcp:127.0.0.1:\(port),server=on,wait=off",
                                        "-kernel", kernel, "-append", "hold"])
        defer { if vm.isRunning { vm.terminate(); _ = vm.wait(timeoutSeconds: 10) } }
        var connection: SocketConnection?
        let deadline = Date().addingTimeInterval(30)
        while connection == nil && Date() < deadline && vm.isRunning {
            connection = try? SocketConnection(connectingTo: .tcp(host: "127.0.0.1", port: UInt16(port)))
            if connection == nil { usleep(10_000) }
        }
        let c = try #require(connection, "no QMP listener on 127.0.0.1:\(port): \(vm.output)")
        #expect(try line(c).hasPrefix(#"{"QMP": {"version": {"qemu": "#))
        _ = c.write(Array(#"{"execute": "qmp_capabilities"}"#.utf8))
        #expect(try line(c) == #"{"return": {}}"#)
        _ = c.write(Array(#"{"execute": "query-status", "id": 1}"#.utf8))
        #expect(try line(c) == #"{"return": {"status": "running", "singlestep": false, "running": true}, "id": 1}"#)
        _ = c.write(Array(#"{"execute": "quit"}"#.utf8))
        // As QEMU 7.2 does: the SHUTDOWN event comes first (the process ends before a reply).
        let event = try line(c)
        #expect(event.contains(#""event": "SHUTDOWN", "data": {"guest": false, "reason": "host-qmp-quit"}"#), "\(event)")
        #expect(vm.wait(timeoutSeconds: 30) == 0, "\(vm.output)")
    }
}
