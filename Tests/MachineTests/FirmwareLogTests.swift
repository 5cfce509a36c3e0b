import Foundation
import Testing
import VMMSys

/// SeaBIOS's own debug log (isa-debugcon on port 0x402) under vmm and under QEMU, booting the
/// same disk: the same PCI devices, BAR sizes and addresses, the same fw_cfg and e820 findings,
/// the same boot path, line for line — except where the machines differ, each listed here.
@Suite(.enabled(if: Harness.kvmAvailable, "requires read/write access to /dev/kvm"),
       .enabled(if: GuestKernels.toolchainAvailable, "needs gcc, as and ld to build the test kernels"),
       .enabled(if: FirmwareGuests.biosInstalled, "needs SeaBIOS (apt-get install seabios qemu-system-data)"))
struct FirmwareLogTests {
    static let masks = [
        Mask(#"^Copying (MPTABLE|SMBIOS|PIR) from 0x[0-9a-f]+(/[0-9a-f]+)? to 0x[0-9a-f]+$"#, "Copying $1 from ADDR to ADDR",
             "where SeaBIOS builds its MP and SMBIOS tables follows its earlier allocations (SMBIOS differs, below)"),
        Mask(#"^Space available for UMB: .*$"#, "Space available for UMB: RANGES",
             "follows the option ROMs loaded (QEMU's kvmvapic.bin takes c0000-c2800) and SeaBIOS's table sizes"),
    ]

    static let differences: [OutputDifference] = [
        .knownIssue(vmm: #"PCI: IO: c000 - c00f|PCI: map device bdf=00:01\.1  bar 4, addr 0000c000, size 00000010 \[io\]"#,
                    qemu: #"PCI: IO: c000 - c08f|PCI: map device bdf=00:02\.0  bar 0, addr 0000c000, size 00000080 \[io\]|PCI: map device bdf=00:01\.1  bar 4, addr 0000c080, size 00000010 \[io\]"#,
                    "transitional virtio-pci devices have no legacy I/O BAR0 under vmm (QEMU: 128 bytes for virtio-blk), so the IDE BAR4 lands at c000"),
        .deliberate(vmm: #"table\(50434146\)=0x[0-9a-f]+ \(via xsdt\)|ACPI: parse DSDT at 0x[0-9a-f]+ \(len 60\)"#,
                    qemu: #"table\(50434146\)=0x[0-9a-f]+ \(via rsdt\)|ACPI: parse DSDT at 0x[0-9a-f]+ \(len \d+\)"#,
                    "vmm's own ACPI tables: RSDP revision 2 with an XSDT (SeaBIOS finds the FADT through it), a DSDT holding only \\_S3 and \\_S5"),
        .deliberate(qemu: #"Searching bootorder for: /rom@genroms/kvmvapic\.bin|Running option rom at c000:0003"#,
                    "no kvmvapic (QEMU's TPR-patching option ROM and port 0x7e device for CPUs without a TPR shadow)"),
    ]

    /// Lines that only say when SeaBIOS's threads happened to finish.
    static func withoutTiming(_ log: String) -> [String] {
        log.split(separator: "\n", omittingEmptySubsequences: false).map { String($0.filter { $0 != "\r" }) }
            .filter { $0 != "All threads complete." }
    }

    /// SeaBIOS's log through the other ways QEMU users show it: `-debugcon file:PATH` with
    /// `-global isa-debugcon.iobase=0x402`, and a unix-socket chardev (server, waiting for its
    /// client) on `-device isa-debugcon,iobase=0x402,chardev=X` read by this test. The same
    /// log as QEMU's each way.
    @Test(arguments: ["debugcon", "socket"])
    func debugLogThroughOtherBackends(_ way: String) throws {
        func run(_ binary: String?, _ tag: String) throws -> (ChildRun, [String])? {
            guard let binary else {
                withKnownIssue(Comment(rawValue: Harness.qemuMissing)) { Issue.record(Comment(rawValue: Harness.qemuMissing)) }
                return nil
            }
            let path = try FirmwareGuests.logPath("\(way)-\(tag)")
            try? FileManager.default.removeItem(atPath: path)
            var flags = FirmwareGuests.baseFlags + ["-drive", "file=\(try FirmwareGuests.diskCopy("a", "\(way)-\(tag)")),if=virtio,format=raw"]
            flags += way == "debugcon" ? ["-debugcon", "file:\(path)", "-global", "isa-debugcon.iobase=0x402"]
                : ["-chardev", "socket,id=log,path=\(path),server=on", "-device", "isa-debugcon,iobase=0x402,chardev=log"]
            let child = ChildHolder()
            let done = DispatchSemaphore(value: 0)
            let arguments = [binary] + flags
            Thread.detachNewThread {
                child.set(Result { try ChildProcess.run(arguments, timeoutSeconds: 120) })
                done.signal()
            }
            var log = ""
            if way == "socket" {
                // The VMM waits for this client before it starts the guest; the log ends when it exits.
                let deadline = Date().addingTimeInterval(60)
                var connection: SocketConnection?
                while connection == nil && Date() < deadline {
                    connection = try? SocketConnection(connectingTo: .unix(path))
                    if connection == nil { usleep(20_000) }   // polling for the listener, bounded by the deadline
                }
                let c = try #require(connection, "\(tag) never listened on \(path)")
                var bytes: [UInt8] = []
                while case let more = try c.read(), !more.isEmpty { bytes += more }
                log = String(decoding: bytes, as: UTF8.self)
            }
            done.wait()
            if way == "debugcon" { log = (try? String(contentsOfFile: path, encoding: .utf8)) ?? "" }
            return (try child.get(), Self.withoutTiming(log))
        }
        guard let (v, vlog) = try run(Harness.vmmPath, "vmm") else { return }
        #expect(v.status == 1 && vlog.contains("Booting from 0000:7c00"), "\(v.output)\n\(vlog.joined(separator: "\n"))")
        guard let (q, qlog) = try run(Harness.qemuPath, "qemu") else { return }
        #expect(q.status == v.status)
        try OutputComparison.expectSame(vmm: vlog, qemu: qlog, masks: Self.masks, differences: Self.differences)
    }

    @Test func debugLogMatchesQEMU() throws {
        func run(_ runner: ([String]) throws -> ChildRun?, _ tag: String) throws -> (ChildRun, String)? {
            let log = try FirmwareGuests.logPath(tag)
            try? FileManager.default.removeItem(atPath: log)
            let flags = FirmwareGuests.baseFlags + FirmwareGuests.debugLog(log)
                + ["-drive", "file=\(try FirmwareGuests.diskCopy("a", "log-\(tag)")),if=virtio,format=raw"]
            guard let r = try runner(flags) else { return nil }
            return (r, (try? String(contentsOfFile: log, encoding: .utf8)) ?? "")
        }
        guard let (v, vlog) = try run({ try Harness.vmm($0, timeoutSeconds: 90) }, "vmm") else { return }
        #expect(v.status == 1, "\(v.output)")
        let lines = Self.withoutTiming(vlog)
        #expect(lines.first == "SeaBIOS (version 1.16.2-debian-1.16.2-1)" || lines.first?.hasPrefix("SeaBIOS (version") == true)
        #expect(lines.contains("Running on QEMU (i440fx)") && lines.contains("Found QEMU fw_cfg") && lines.contains("Moving pm_base to 0x600"),
                "\(vlog)")
        #expect(lines.contains("Booting from 0000:7c00"), "\(vlog)")
        guard let (q, qlog) = try run({ try Harness.qemuOrKnownIssue($0, timeoutSeconds: 90) }, "qemu") else { return }
        #expect(q.status == v.status)
        try OutputComparison.expectSame(vmm: lines, qemu: Self.withoutTiming(qlog), masks: Self.masks, differences: Self.differences)
    }
}
