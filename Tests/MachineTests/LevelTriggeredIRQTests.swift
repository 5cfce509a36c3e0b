import Foundation
import Testing
import VMMSys

/// Level-triggered IOAPIC lines through the in-kernel irqchip (Guests/tests/irq.c): one
/// delivery per raise; with `level`, a line left high across EOI is delivered again, a line
/// lowered while masked is not delivered at unmask, a line raised while masked is delivered
/// once at unmask. Compared with QEMU line by line.
///
/// This host's KVM (kvm_pvm) sometimes delivers a level-triggered vector twice (the LAPIC
/// shows it still in IRR, not in ISR, inside the handler), whichever VMM runs the guest. The
/// kernel reports that with a distinctive line; when vmm's run shows it, the same kernel runs
/// under QEMU with many rounds, and only if QEMU shows it too is it recorded as a known host
/// issue. Anything else fails.
@Suite(.enabled(if: Harness.kvmAvailable, "requires read/write access to /dev/kvm"),
       .enabled(if: GuestKernels.toolchainAvailable, "needs gcc, as and ld to build the test kernels"))
struct LevelTriggeredIRQTests {
    /// The kernel's report of a delivery no raise explains.
    static let hostSignature = #"^FAIL irq: (extra delivery: .*|.*: vector [0-9a-f]+ still pending in the LAPIC IRR)$"#

    static func hostIssueLine(_ lines: [String]) throws -> String? {
        let r = try Regex(hostSignature)
        return lines.first { $0.wholeMatch(of: r) != nil }
    }

    @Test(arguments: ["irq=11 mode=ioapic", "irq=11 mode=ioapic level", "irq=10 mode=ioapic level count=20"])
    func levelTriggeredIOAPICLine(_ append: String) throws {
        let kernel = try GuestKernels.path("irq")
        let flags = Harness.qemuFlags(kernel: kernel, append: append)
        let v = try Harness.vmm(flags)
        let vl = Harness.serialLines(v.output)
        if v.status == 1 && vl.contains("PASS irq") {
            guard let q = try Harness.qemuOrKnownIssue(flags) else { return }
            let ql = Harness.serialLines(q.output)
            if let line = try Self.hostIssueLine(ql) {
                withKnownIssue("host KVM delivered a level-triggered interrupt twice under QEMU (vmm passed this run)") {
                    Issue.record("qemu: \(line)")
                }
                return
            }
            #expect(q.status == v.status)
            try OutputComparison.expectSame(vmm: vl, qemu: ql)
            return
        }
        guard let line = try Self.hostIssueLine(vl) else {
            Issue.record("vmm failed (status \(v.status)):\n\(v.output)")
            return
        }
        // Show the same with QEMU: the same kernel with many rounds.
        guard let q = try Harness.qemuOrKnownIssue(Harness.qemuFlags(kernel: kernel, append: append.replacing(#/\s+count=\d+/#, with: "") + " count=1000")) else { return }
        if let qline = try Self.hostIssueLine(Harness.serialLines(q.output)) {
            withKnownIssue(Comment(rawValue: "host KVM (kvm_pvm) delivers a level-triggered IOAPIC vector twice; QEMU with the same kernel: \(qline)")) {
                Issue.record("vmm: \(line)")
            }
        } else {
            Issue.record("vmm: \(line), but QEMU with the same kernel did not show it in 1000 rounds:\n\(q.output)")
        }
    }
}
