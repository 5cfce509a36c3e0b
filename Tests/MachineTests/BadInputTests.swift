import Foundation
import Testing
import VMMSys

/// Bad input from users gets one clear line on stderr and exit status 1 — never a trap or a
/// stack trace — from the real executable.
@Suite struct BadInputTests {
    static let flags = ["-machine", "accel=kvm", "-nodefaults", "-display", "none", "-serial", "stdio"]

    func expectOneLineError(_ args: [String], mentioning words: [String]) throws {
        let run = try Harness.vmm(Self.flags + args)
        #expect(run.status == 1, "\(args): status \(run.status)")
        let lines = run.output.split(separator: "\n")
        #expect(lines.count == 1, "\(args): \(run.output)")
        #expect(run.output.hasPrefix("vmm: "), "\(run.output)")
        for w in words { #expect(run.output.contains(w), "\(args): '\(w)' missing in \(run.output)") }
        #expect(!run.output.contains("Fatal error") && !run.output.contains("Backtrace"))
    }

    @Test func missingKernel() throws {
        try expectOneLineError(["-kernel", "/nonexistent/kernel.elf"], mentioning: ["/nonexistent/kernel.elf"])
    }

    @Test(.enabled(if: Harness.kvmAvailable, "requires /dev/kvm"))
    func notMultiboot() throws {
        try expectOneLineError(["-kernel", "/bin/sh"], mentioning: ["/bin/sh", "not a Multiboot kernel"])
    }

    @Test(.enabled(if: Harness.kvmAvailable && GuestKernels.toolchainAvailable, "requires /dev/kvm and gcc"))
    func truncatedELF() throws {
        let whole = try Data(contentsOf: URL(fileURLWithPath: GuestKernels.path("hello")))
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("truncated-\(getpid()).elf").path
        try whole.prefix(9000).write(to: URL(fileURLWithPath: path))
        defer { try? FileManager.default.removeItem(atPath: path) }
        try expectOneLineError(["-kernel", path], mentioning: [path, "outside the file"])
    }

    /// A device as the kernel or initrd: refused at once (it used to be read until memory ran out).
    @Test(.enabled(if: Harness.kvmAvailable, "requires /dev/kvm"))
    func deviceAsKernel() throws {
        try expectOneLineError(["-kernel", "/dev/zero"], mentioning: ["/dev/zero", "not a regular file"])
    }

    @Test func unknownFlag() throws {
        try expectOneLineError(["-frobnicate"], mentioning: ["-frobnicate"])
    }

    @Test(arguments: ["12X", "0", "-5", "99999999G"])
    func badMemorySize(_ size: String) throws {
        try expectOneLineError(["-m", size, "-kernel", "/nonexistent"], mentioning: ["-m"])
    }

    /// Numbers that overflow (or are out of range) from the real executable: one line, status 1.
    @Test(arguments: [
        (["-m", "99999999999T"], "-m"), (["-m", "0xffffffffffffffffM"], "-m"),
        (["-smp", "sockets=4294967296,cores=4294967296,threads=4294967296"], "-smp"), (["-smp", "100000"], "-smp"),
        (["-smp", "sockets=-1,cores=-1"], "-smp"),
        (["-device", "isa-debug-exit,iobase=0xffffffffffffffff"], "iobase"),
        (["-device", "isa-debug-exit,iosize=0xffffffffffffffff"], "iosize"),
    ])
    func overflowingNumbers(_ args: [String], _ word: String) throws {
        try expectOneLineError(args + ["-kernel", "/nonexistent"], mentioning: [word])
    }

    @Test func unknownDevice() throws {
        try expectOneLineError(["-device", "virtio-gpu"], mentioning: ["virtio-gpu"])
    }

    /// What a user without KVM sees, from both the main job and a kernel run.
    @Test(arguments: [[String](), ["-kernel", "/bin/sh"]])
    func noKVM(_ args: [String]) throws {
        guard let vmm = Harness.vmmPath else { throw HarnessError("vmm not built") }
        let run = try ChildProcess.run(["/usr/bin/env", "VMM_KVM_DEVICE=/nonexistent/kvm", vmm] + args)
        #expect(run.status == 1)
        #expect(run.output.split(separator: "\n").count == 1, "\(run.output)")
        #expect(run.output.hasPrefix("vmm: KVM is not available") && run.output.contains("/nonexistent/kvm"))
    }

    @Test func deviceHelpListsOurDevices() throws {
        let run = try Harness.vmm(["-device", "help"])
        #expect(run.status == 0)
        for name in ["\"isa-debug-exit\"", "\"pc-testdev\"", "\"pci-testdev\""] { #expect(run.output.contains("name \(name)")) }
    }
}

/// A command line in the shape kvm-unit-tests' x86 runner builds (its flag order, a -cpu model
/// with feature flags, -global, kernel_irqchip): accepted, with warnings for what has no
/// meaning here, and the kernel runs as under QEMU.
@Suite(.enabled(if: Harness.kvmAvailable && GuestKernels.toolchainAvailable, "requires /dev/kvm and gcc"))
struct UnitTestRunnerCommandLineTests {
    @Test func kvmUnitTestsShape() throws {
        let kernel = try GuestKernels.path("hello")
        let flags = ["-nodefaults", "-device", "pc-testdev", "-device", "isa-debug-exit,iobase=0xf4,iosize=0x4",
                     "-vnc", "none", "-serial", "stdio", "-device", "pci-testdev", "-machine", "accel=kvm,kernel_irqchip=split",
                     "-kernel", kernel, "-smp", "2", "-cpu", "qemu64,+x2apic,+tsc-deadline",
                     "-global", "kvm-pit.lost_tick_policy=discard", "-m", "256", "-append", "x=1"]
        let v = try Harness.vmm(flags)
        #expect(v.status == 1, "\(v.output)")
        #expect(v.output.contains("vmm: warning: -machine: property 'kernel_irqchip=split' ignored"))
        guard let q = try Harness.qemuOrKnownIssue(flags) else { return }
        #expect(q.status == v.status)
        #expect(Harness.serialLines(q.output) == Harness.serialLines(v.output))
    }
}

/// A value with a newline or escape in it is echoed escaped: the error stays one line (found by
/// the cmdline fuzz target: a stray argument "\n-d" printed an error whose first line was empty).
@Suite struct ControlCharacterInputTests {
    @Test(arguments: ["\n-d", "disk\nimg", "\u{1B}[2Jx"])
    func strayWordWithControlCharacters(_ word: String) throws {
        try BadInputTests().expectOneLineError([word], mentioning: ["a disk image needs"])
    }

    @Test func deviceNameWithNewline() throws {
        try BadInputTests().expectOneLineError(["-device", "virtio\nrng"], mentioning: ["virtio\\nrng"])
    }
}
