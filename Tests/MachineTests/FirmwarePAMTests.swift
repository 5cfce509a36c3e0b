import Foundation
import Testing

/// The i440FX PAM segments and SMRAM as SeaBIOS leaves them, through the memory API: `info
/// mtree` before the firmware runs (-S: every segment shows PCI, i.e. the BIOS ROM and the
/// option-ROM area) and after it has shadowed itself and booted the disk (0xc0000-0xe7fff and
/// 0xf0000-0xfffff read-only RAM, 0xe8000-0xeffff RAM), under vmm and under QEMU.
@Suite(.enabled(if: Harness.kvmAvailable, "requires read/write access to /dev/kvm"),
       .enabled(if: GuestKernels.toolchainAvailable, "needs gcc, as and ld to build the test kernels"),
       .enabled(if: FirmwareGuests.biosInstalled, "needs SeaBIOS (apt-get install seabios qemu-system-data)"))
struct FirmwarePAMTests {
    /// The PAM and SMRAM alias lines of the memory address space's tree. QEMU's `info mtree`
    /// hides disabled regions; vmm's marks them " [disabled]", so those are dropped.
    static func pamLines(_ output: String) -> [String] {
        let lines = output.replacingOccurrences(of: "\r", with: "").split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        guard let start = lines.firstIndex(of: "address-space: memory") else { return [] }
        return lines[(start + 1)...].prefix { !$0.isEmpty }
            .filter { ($0.contains("alias pam-") || $0.contains("alias smram-region")) && !$0.hasSuffix(" [disabled]") }
    }

    /// The memory flat view below 1 MiB. vmm prints a read-only RAM range as "ram … [ROM]" where
    /// QEMU prints "rom" (normalised here; a known difference of vmm's `info mtree -f`).
    static func lowFlatView(_ output: String) -> [String] {
        MonitorRun.flatView("memory", in: output).filter { line in
            guard let start = UInt64(line.drop { $0 == " " }.prefix(16), radix: 16) else { return false }
            return start < 0x10_0000
        }.map { $0.replacing(#/\(prio (\d+), ram\): (.*) \[ROM\]$/#) { "(prio \($0.1), rom): \($0.2)" } }
    }

    struct Snapshot { var tree: [String]; var flat: [String] }

    func run(_ executable: String) throws -> (before: Snapshot, after: Snapshot)? {
        let disk = try FirmwareGuests.diskCopy("h", "pam-\(URL(fileURLWithPath: executable).lastPathComponent)")
        let m = try MonitorRun(executable: executable, arguments: ["-machine", "accel=kvm", "-nodefaults", "-display", "none", "-S",
                                                                   "-device", "isa-debug-exit,iobase=0xf4,iosize=0x4",
                                                                   "-drive", "file=\(disk),if=virtio,format=raw"])
        defer { _ = m.quit() }
        // The monitor's first prompt, before the first command (a hang guard, not a delay).
        let deadline = Date().addingTimeInterval(60)
        while !m.output.contains("(qemu)") && m.process.isRunning && Date() < deadline { usleep(2000) }
        let before = Snapshot(tree: Self.pamLines(m.command("info mtree")), flat: Self.lowFlatView(m.command("info mtree -f")))
        _ = m.command("cont")
        guard m.waitForSerial("PASS bootdisk") else {
            Issue.record("no PASS from the boot disk under \(executable): \(m.serial)")
            return nil
        }
        let after = Snapshot(tree: Self.pamLines(m.command("info mtree")), flat: Self.lowFlatView(m.command("info mtree -f")))
        return (before, after)
    }

    @Test func pamAndSMRAMAsSeaBIOSLeavesThem() throws {
        guard let vmm = Harness.vmmPath, let v = try run(vmm) else { return }
        // Before: all thirteen segments show PCI memory; SMRAM is closed (the VGA window is PCI).
        #expect(v.before.tree.count == 14 && v.before.tree.filter { $0.contains("alias pam-pci @pci") }.count == 13, "\(v.before.tree)")
        #expect(v.before.tree.contains("    00000000000a0000-00000000000bffff (prio 1, i/o): alias smram-region @pci 00000000000a0000-00000000000bffff"))
        // After: exactly one alias per segment, RAM-backed, as SeaBIOS's make_bios_readonly() leaves them.
        #expect(v.after.tree.count == 14 && v.after.tree.filter { $0.contains("alias pam-rom @pc.ram") }.count == 11
                && v.after.tree.filter { $0.contains("alias pam-ram @pc.ram") }.count == 2, "\(v.after.tree)")
        guard let qemu = Harness.qemuPath else {
            withKnownIssue(Comment(rawValue: Harness.qemuMissing)) { Issue.record(Comment(rawValue: Harness.qemuMissing)) }
            return
        }
        guard let q = try run(qemu) else { return }
        #expect(v.before.tree == q.before.tree)
        #expect(v.after.tree == q.after.tree)
        try OutputComparison.expectSame(vmm: v.before.flat, qemu: q.before.flat)
        try OutputComparison.expectSame(vmm: v.after.flat, qemu: q.after.flat, differences: [
            .deliberate(vmm: #"  0000000000000000-00000000000bffff \(prio 0, ram\): pc\.ram|  00000000000c0000-00000000000e7fff \(prio 0, rom\): pc\.ram @00000000000c0000"#,
                        qemu: #"  0000000000000000-00000000000c2fff \(prio 0, ram\): pc\.ram|  00000000000c3000-00000000000e7fff \(prio 0, rom\): pc\.ram @00000000000c3000"#,
                        "QEMU's kvmvapic maps its option ROM (c0000-c2fff) writable over the PAM segment; vmm has no kvmvapic"),
        ])
    }
}
