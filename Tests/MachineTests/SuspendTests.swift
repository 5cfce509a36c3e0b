import Foundation
import Testing

/// `Guests/tests/suspend.c`: ACPI S3. PM1a_CNT with the DSDT's \_S3 type and SLP_EN stops the
/// vCPUs (SUSPEND, status "suspended"); a wake-up — the RTC alarm with AIE and RTC_EN, or QMP
/// system_wakeup — resets the machine keeping RAM, and the resume goes through the CMOS
/// shutdown status 0xfe and the FACS waking vector: with `-bios`, SeaBIOS's resume path; in the
/// direct boot the machine enters the waking vector itself. The waking code reports PM1 status
/// (WAK_STS with RTC_STS or PWRBTN_STS), the shutdown status and RAM, as under QEMU.
/// QEMU: acpi_pm1_cnt_write() → qemu_system_suspend_request(), rtc_notify_suspend(),
/// rtc_update_timer() → qemu_system_wakeup_request(), pc_machine_wakeup(), acpi_notify_wakeup().
@Suite(.enabled(if: Harness.kvmAvailable, "requires read/write access to /dev/kvm"),
       .enabled(if: GuestKernels.toolchainAvailable, "needs gcc, as and ld to build the test kernels"))
struct SuspendTests {
    static func flags(firmware: Bool, append: String, extra: [String] = []) throws -> [String] {
        (firmware ? ["-bios", "bios-256k.bin"] : []) + Harness.qemuFlags(kernel: try GuestKernels.path("suspend"), append: append) + extra
    }

    static func qemuFlags(_ flags: [String]) -> [String] {
        flags.starts(with: ["-bios", "bios-256k.bin"]) ? Array(flags.dropFirst(2)) : flags
    }

    /// The RTC alarm wakes the machine.
    @Test(arguments: [false, true])
    func rtcAlarmWakesThroughTheWakingVector(firmware: Bool) throws {
        if firmware { try #require(FirmwareGuests.biosInstalled, "\(FirmwareGuests.biosMissing)") }
        let flags = try Self.flags(firmware: firmware, append: "wake=rtc in=2")
        let v = try Harness.vmm(flags, timeoutSeconds: 120)
        let lines = Harness.serialLines(v.output)
        #expect(v.status == 1 && lines.contains("PASS suspend"), "\(v.output)")
        #expect(lines.contains("resumed: PM1 status 8400, CMOS shutdown status 00, RAM word at 0x8000 kept"), "\(v.output)")
        guard let q = try Harness.qemuOrKnownIssue(Self.qemuFlags(flags), timeoutSeconds: 120) else { return }
        #expect(q.status == v.status, "vmm \(v.status), qemu \(q.status)")
        try OutputComparison.expectSame(vmm: lines, qemu: Harness.serialLines(q.output))
    }

    /// What a QMP client sees: system_wakeup refused while running; SUSPEND and status
    /// "suspended"; system_wakeup, WAKEUP, and the waking code's output with PWRBTN_STS.
    struct Session: Equatable {
        var earlyWakeup: String
        var sawSuspend: Bool
        var statusWhileSuspended: String
        var wakeupReply: String
        var sawWakeup: Bool
        var status: Int32
        var lines: [String]
    }

    static func session(_ binary: String, _ flags: [String], tag: String) throws -> Session {
        let socket = FileManager.default.temporaryDirectory.appendingPathComponent("suspend-\(tag)-\(getpid()).sock").path
        try? FileManager.default.removeItem(atPath: socket)
        let run = ChildHolder()
        let done = DispatchSemaphore(value: 0)
        let arguments = [binary] + flags + ["-qmp", "unix:\(socket),server=on,wait=off"]
        Thread.detachNewThread {
            run.set(Result { try ChildProcess.run(arguments, timeoutSeconds: 120) })
            done.signal()
        }
        let qmp = try QMPClient(path: socket)
        let early = try qmp.execute("system_wakeup")
        let sawSuspend = try qmp.waitForEvent("SUSPEND")
        let status = (try qmp.execute("query-status")["return"] as? [String: Any])?["status"] as? String ?? "?"
        let reply = try qmp.execute("system_wakeup")
        let sawWakeup = try qmp.waitForEvent("WAKEUP")
        while try qmp.message() != nil {}
        done.wait()
        let child = try run.get()
        func describe(_ r: [String: Any]) -> String {
            if let e = r["error"] as? [String: Any] { return "error \(e["class"] ?? "?"): \(e["desc"] ?? "?")" }
            return "return"
        }
        return Session(earlyWakeup: describe(early), sawSuspend: sawSuspend, statusWhileSuspended: status,
                       wakeupReply: describe(reply), sawWakeup: sawWakeup, status: child.status,
                       lines: Harness.serialLines(child.output))
    }

    @Test(arguments: [false, true])
    func qmpSystemWakeup(firmware: Bool) throws {
        if firmware { try #require(FirmwareGuests.biosInstalled, "\(FirmwareGuests.biosMissing)") }
        let flags = try Self.flags(firmware: firmware, append: "wake=qmp")
        let v = try Self.session(try #require(Harness.vmmPath), flags, tag: "vmm\(firmware)")
        #expect(v.earlyWakeup == "error GenericError: Unable to wake up: guest is not in suspended state")
        #expect(v.sawSuspend && v.statusWhileSuspended == "suspended" && v.wakeupReply == "return" && v.sawWakeup, "\(v)")
        #expect(v.status == 1 && v.lines.contains("resumed: PM1 status 8100, CMOS shutdown status 00, RAM word at 0x8000 kept"),
                "\(v.lines.joined(separator: "\n"))")
        guard let qemu = Harness.qemuPath else {
            withKnownIssue(Comment(rawValue: Harness.qemuMissing)) { Issue.record(Comment(rawValue: Harness.qemuMissing)) }
            return
        }
        let q = try Self.session(qemu, Self.qemuFlags(flags), tag: "qemu\(firmware)")
        #expect(v.earlyWakeup == q.earlyWakeup && v.sawSuspend == q.sawSuspend && v.statusWhileSuspended == q.statusWhileSuspended
                && v.wakeupReply == q.wakeupReply && v.sawWakeup == q.sawWakeup && v.status == q.status, "vmm \(v)\nqemu \(q)")
        try OutputComparison.expectSame(vmm: v.lines, qemu: q.lines)
    }
}

/// The result of a child process run on another thread.
final class ChildHolder: @unchecked Sendable {
    // @unchecked: written once by the runner thread before the semaphore it signals, read after.
    private var result: Result<ChildRun, any Error>?
    func set(_ r: Result<ChildRun, any Error>) { result = r }
    func get() throws -> ChildRun {
        guard let result else { throw HarnessError("the child never ran") }
        return try result.get()
    }
}
