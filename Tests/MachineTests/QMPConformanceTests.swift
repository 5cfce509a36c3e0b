import Foundation
import TestSupport
import Testing
import VMMSys

/// QMP as QEMU speaks it, checked with QEMU's own Python client (qemu.qmp): one script
/// (Tests/QMPConformance/qmp_conformance.py) drives qemu-system-x86_64 and vmm through the same
/// session — negotiation, queries, errors, stop/cont while the guest ticks, a second client,
/// system_reset, the ACPI power button to a guest-initiated S5 — and the two normalized
/// transcripts must be equal line for line.
@Suite(.serialized,
       .enabled(if: Harness.kvmAvailable, "requires read/write access to /dev/kvm"),
       .enabled(if: GuestKernels.toolchainAvailable, "needs gcc, as and ld to build the test kernels"))
struct QMPConformanceTests {
    /// A Python with qemu.qmp: $VMM_QMP_PYTHON, or the venv .ci/run makes at .build/qmp-venv.
    static let python: String? = {
        let candidates = [ProcessInfo.processInfo.environment["VMM_QMP_PYTHON"],
                          GuestKernels.repositoryRoot.appendingPathComponent(".build/qmp-venv/bin/python").path].compactMap { $0 }
        return candidates.first { path in
            (try? ChildProcess.run([path, "-c", "import qemu.qmp"], timeoutSeconds: 30).status) == 0
        }
    }()

    /// The session's transcript under `binary`, with QMP on `-qmp` (form "qmp") or on a socket
    /// chardev with `-mon chardev=qmp0,mode=control` (form "mon").
    static func transcript(_ binary: String, form: String = "qmp") throws -> [String] {
        let work = FileManager.default.temporaryDirectory.appendingPathComponent("qmp-\(getpid())-\(UInt32.random(in: 0...UInt32.max))").path
        try FileManager.default.createDirectory(atPath: work, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: work) }
        let image = work + "/disk.img"
        try Data(count: 4 << 20).write(to: URL(fileURLWithPath: image))
        let script = GuestKernels.repositoryRoot.appendingPathComponent("Tests/QMPConformance/qmp_conformance.py").path
        let run = try ChildProcess.run([try #require(python), script, binary, try GuestKernels.path("qmpguest"), image, work, form],
                                       timeoutSeconds: 180)
        #expect(run.status == 0, "\(binary): \(run.output.suffix(2000))")
        return run.output.split(separator: "\n").map(String.init)
    }

    @Test func vmmAnswersAsQEMUDoes() throws {
        guard Self.python != nil else {
            withKnownIssue("qemu.qmp is not installed (.ci/run puts it in .build/qmp-venv; or set VMM_QMP_PYTHON)") {
                Issue.record("no Python with qemu.qmp")
            }
            return
        }
        let vmm = try Self.transcript(try #require(Harness.vmmPath))
        // vmm's own run must show what the session checks, whatever QEMU does.
        #expect(vmm.contains { $0.contains("\"contiguous\": true") && $0.contains("\"frozen_while_stopped\": true") })
        #expect(vmm.contains { $0.contains("\"guest_saw_button\": true") && $0.contains("guest-shutdown") })
        #expect(vmm.last == #"{"kind": "exit", "status": 0}"#)
        guard let qemu = Harness.qemuPath else {
            withKnownIssue("qemu-system-x86_64 is not installed: the QEMU half of the comparison did not run") {
                Issue.record("no qemu-system-x86_64")
            }
            return
        }
        let reference = try Self.transcript(qemu)
        let differing = zip(vmm, reference).filter { $0 != $1 }.map { "vmm:  \($0)\nqemu: \($1)" }
        #expect(vmm == reference, "\(vmm.count) vs \(reference.count) lines; differing:\n\(differing.joined(separator: "\n"))")
    }

    /// QMP on a socket chardev (`-chardev socket,id=qmp0,path=P,server=on,wait=off -mon
    /// chardev=qmp0,mode=control`) serves the same session as `-qmp unix:P,server=on,wait=off`:
    /// vmm's transcript equals QEMU's with the same options (and `vmmAnswersAsQEMUDoes` holds
    /// vmm's `-qmp` one to QEMU's); without QEMU, it equals vmm's own `-qmp` transcript.
    /// QEMU: monitor_init() → monitor_init_qmp() on any chardev.
    @Test func monitorOnASocketChardevServesQMP() throws {
        guard Self.python != nil else {
            withKnownIssue("qemu.qmp is not installed (.ci/run puts it in .build/qmp-venv; or set VMM_QMP_PYTHON)") {
                Issue.record("no Python with qemu.qmp")
            }
            return
        }
        let vmmPath = try #require(Harness.vmmPath)
        let onChardev = try Self.transcript(vmmPath, form: "mon")
        #expect(onChardev.last == #"{"kind": "exit", "status": 0}"#)
        #expect(onChardev.contains { $0.contains("\"guest_saw_button\": true") && $0.contains("guest-shutdown") })
        let reference = try Harness.qemuPath.map { try Self.transcript($0, form: "mon") } ?? Self.transcript(vmmPath, form: "qmp")
        let differing = zip(onChardev, reference).filter { $0 != $1 }.map { "vmm:       \($0)\nreference: \($1)" }
        #expect(onChardev == reference, "\(onChardev.count) vs \(reference.count) lines; differing:\n\(differing.joined(separator: "\n"))")
    }
}
