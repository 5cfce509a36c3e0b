import Devices
import Foundation
import Memory
import Synchronization
import Testing
import VirtIO
import VMMSys
@testable import Machine

/// Guests/tests/msixstorm.c: two vCPUs rewrite MSI-X entry 0 of a virtio-rng-pci device and
/// toggle MSI-X Enable / Function Mask at the same time, then send a request. The VMM's
/// resources must stay flat — the same connected vectors, the route of each message used (not
/// one per round) and the same open file descriptors after the storm as before it — and the request must still complete with its
/// interrupt, as under QEMU. Counts are asserted, never time: the cycles per round the guest
/// prints (first and last 1000 rounds) are for the README.
/// Serialized: each storm keeps two vCPUs busy, and this host has two cores.
@Suite(.serialized, .enabled(if: Harness.kvmAvailable, "requires read/write access to /dev/kvm"),
       .enabled(if: GuestKernels.toolchainAvailable, "needs gcc, as and ld to build the test kernels"))
struct MSIXStormTests {
    static let rounds = 3000
    static let deadline: TimeInterval = 300

    /// The verdict lines: everything the kernel prints but the cycle figures.
    static func verdict(_ lines: [String]) -> [String] {
        lines.filter { !$0.isEmpty && !$0.hasPrefix("cycles_per_round") }
    }

    static func flags(kernel: String, sync: Bool) -> [String] {
        Harness.qemuFlags(kernel: kernel, append: "rounds=\(rounds)\(sync ? " sync" : "")",
                          extra: ["-smp", "2", "-device", "virtio-rng-pci"])
    }

    /// In process, so the accelerator's route table and the device's MSI-X can be read at the
    /// kernel's two sync points (it waits for a byte on COM1 at each).
    @Test func routesAndConnectionsAreTheSameAfterTheStorm() throws {
        var c = MachineConfiguration()
        c.kernel = try GuestKernels.path("msixstorm")
        c.append = "rounds=\(Self.rounds) sync"
        c.cpuCount = 2
        c.maxCPUs = 2
        c.devices = try ["isa-serial", "isa-debug-exit,iobase=0xf4,iosize=0x4", "virtio-rng-pci"].map(MachineConfiguration.device)
        let serial = CapturingSerialBackend()
        let m = try PCMachine(c, serial: serial, memorySystem: MemorySystem())
        let dev = try #require(m.devices.pci.host.functions.lazy.compactMap { $0.device as? VirtIOPCI }.first)
        let port = try #require(m.devices.serial)
        let status = Mutex<Int32?>(nil)
        Thread { let s = m.run(); status.withLock { $0 = s } }.start()

        func waitFor(_ line: String) -> Bool {
            let end = Date().addingTimeInterval(Self.deadline)
            while !serial.text.contains(line + "\n") && status.withLock({ $0 }) == nil && Date() < end { usleep(1000) }
            return serial.text.contains(line + "\n")
        }
        func snapshot() -> (gsis: [UInt32], connected: Int) { (m.accelerator.msiRouteGSIs, dev.msix?.connectedVectors ?? 0) }

        let readyReached = waitFor("storm: ready")
        #expect(readyReached, "\(serial.text)")
        let before = snapshot()
        _ = port.receive([0x0a])
        let doneReached = waitFor("storm: done")
        #expect(doneReached, "\(serial.text)")
        let after = snapshot()
        _ = port.receive([0x0a])
        let end = Date().addingTimeInterval(Self.deadline)
        while status.withLock({ $0 }) == nil && Date() < end { usleep(1000) }
        if status.withLock({ $0 }) == nil { m.requestExit(status: 99, reason: "test deadline") }

        // Before: MSI-X on, entry 0 unmasked — one vector, one route, the first MSI GSI. After:
        // the same live vector, plus the route of the other message the storm used kept idle
        // for reuse (KVMMSIController): the table holds the two messages, not one per round.
        #expect(before.connected == 1 && before.gsis == [24], "\(before)")
        #expect(after.connected == before.connected && after.gsis == [24, 25], "before \(before), after \(after)")
        let text = serial.text
        #expect(status.withLock { $0 } == 1, "\(text)")
        #expect(text.contains("request: 64 bytes, interrupts 1 on vector 0x41, 0 elsewhere\nPASS msixstorm"), "\(text)")
    }

    /// The `vmm` executable with QEMU's command line: its open descriptors are counted at the
    /// two sync points; then the same under QEMU, whose verdict lines must be the same.
    @Test func fdsStayFlatAndTheVerdictMatchesQEMU() throws {
        let kernel = try GuestKernels.path("msixstorm")
        let vmmPath = try #require(Harness.vmmPath)
        let v = try SyncedRun(executable: vmmPath, arguments: Self.flags(kernel: kernel, sync: true), deadline: Self.deadline)
        #expect(v.status == 1, "\(v.output)")
        // One more after: the eventfd of the other message's connection, kept idle for reuse.
        #expect(v.fdsBefore != nil && v.fdsAfter == v.fdsBefore.map { $0 + 1 }, "open fds before the storm \(v.fdsBefore ?? -1), after \(v.fdsAfter ?? -1)")
        let vl = Self.verdict(Harness.serialLines(v.output))
        #expect(vl.last == "PASS msixstorm", "\(v.output)")
        print("msixstorm vmm:  \(v.output.split(separator: "\n").first { $0.hasPrefix("cycles_per_round") } ?? "")")

        guard let qemu = Harness.qemuPath else {
            withKnownIssue(Comment(rawValue: Harness.qemuMissing)) { Issue.record(Comment(rawValue: Harness.qemuMissing)) }
            return
        }
        let q = try SyncedRun(executable: qemu, arguments: Self.flags(kernel: kernel, sync: true), deadline: Self.deadline)
        #expect(q.status == v.status, "qemu \(q.status): \(q.output)")
        try OutputComparison.expectSame(vmm: Harness.serialLines(v.output), qemu: Harness.serialLines(q.output),
                                        masks: [Mask(#"^cycles_per_round first=\d+ last=\d+ "#, "cycles_per_round first=N last=M ", "timing")])
        print("msixstorm qemu: \(q.output.split(separator: "\n").first { $0.hasPrefix("cycles_per_round") } ?? "")")
    }
}

/// Runs a VMM with the serial console on a pipe, answering the msixstorm kernel's "storm:
/// ready" and "storm: done" with a byte after counting the process's open descriptors.
struct SyncedRun {
    var output = ""
    var status: Int32 = -1
    var fdsBefore: Int?
    var fdsAfter: Int?

    init(executable: String, arguments: [String], deadline: TimeInterval) throws {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: executable)
        p.arguments = arguments
        let input = Pipe(), out = Pipe()
        p.standardInput = input
        p.standardOutput = out
        p.standardError = out
        let text = Mutex("")
        let reader = out.fileHandleForReading
        let finished = DispatchSemaphore(value: 0)
        Thread {
            while true {
                let d = reader.availableData
                if d.isEmpty { break }
                text.withLock { $0 += String(decoding: d, as: UTF8.self) }
            }
            finished.signal()
        }.start()
        try p.run()
        let pid = p.processIdentifier
        let end = Date().addingTimeInterval(deadline)
        func waitFor(_ line: String) -> Bool {
            while !text.withLock({ $0.contains(line) }) && p.isRunning && Date() < end { usleep(1000) }
            return text.withLock { $0.contains(line) }
        }
        func openFDs() -> Int? { (try? FileManager.default.contentsOfDirectory(atPath: "/proc/\(pid)/fd"))?.count }
        if waitFor("storm: ready") {
            fdsBefore = openFDs()
            input.fileHandleForWriting.write(Data("\n".utf8))
            if waitFor("storm: done") {
                fdsAfter = openFDs()
                input.fileHandleForWriting.write(Data("\n".utf8))
            }
        }
        while p.isRunning && Date() < end { usleep(1000) }
        if p.isRunning { p.terminate() }
        p.waitUntilExit()
        try? input.fileHandleForWriting.close()
        _ = finished.wait(timeout: .now() + 10)
        status = p.terminationStatus
        output = text.withLock { $0 }
    }
}
