import Foundation
import Testing

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
