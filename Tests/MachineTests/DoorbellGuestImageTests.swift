import Foundation
import Testing
import VMMSys
@testable import Machine

/// The embedded doorbell guest is exactly what its checked-in source assembles to.
@Suite struct DoorbellGuestImageTests {
    @Test(.enabled(if: ChildProcess.which("as") != nil && ChildProcess.which("ld") != nil, "needs binutils (as, ld)"))
    func embeddedImageMatchesSource() throws {
        let here = URL(fileURLWithPath: #filePath)
        let root = here.deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        let out = FileManager.default.temporaryDirectory.appendingPathComponent("doorbell-\(getpid())-\(UInt32.random(in: 0...UInt32.max))")
        try FileManager.default.createDirectory(at: out, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: out) }
        let run = try ChildProcess.run(["/bin/sh", root.appendingPathComponent("Guests/doorbell/build.sh").path, out.path], timeoutSeconds: 60)
        #expect(run.status == 0, "\(run.output)")
        let built = try [UInt8](Data(contentsOf: out.appendingPathComponent("doorbell.bin")))
        #expect(built == doorbellGuestImage)
    }
}
