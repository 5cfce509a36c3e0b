import Foundation
import Testing

/// SeaBIOS boots `Guests/firmware/bootdisk.S` from virtio-blk-pci under vmm as under QEMU: the
/// boot sector loads stage 2 through INT 13h, which reads marked sectors by CHS and LBA, reads
/// past the end of the disk, lists the BIOS memory map and the fw_cfg boot order, and exits
/// through isa-debug-exit. Serial output and exit status must be the same under both.
@Suite(.enabled(if: Harness.kvmAvailable, "requires read/write access to /dev/kvm"),
       .enabled(if: GuestKernels.toolchainAvailable, "needs gcc, as and ld to build the test kernels"),
       .enabled(if: FirmwareGuests.biosInstalled, "needs SeaBIOS (apt-get install seabios qemu-system-data)"))
struct FirmwareBootTests {
    /// Runs `flags` under vmm and QEMU; the same status and serial lines.
    func compare(_ flags: [String], expect verdict: String = "PASS bootdisk", timeout: Int = 90) throws {
        let v = try Harness.vmm(flags, timeoutSeconds: timeout)
        let lines = Harness.serialLines(v.output)
        #expect(lines.contains(verdict) && v.status == 1, "status \(v.status)\n\(v.output)")
        guard let q = try Harness.qemuOrKnownIssue(flags, timeoutSeconds: timeout) else { return }
        #expect(v.status == q.status, "vmm \(v.status), qemu \(q.status)")
        try OutputComparison.expectSame(vmm: lines, qemu: Harness.serialLines(q.output))
    }

    /// The issue's command line: no -kernel, one disk with if=virtio.
    @Test func bootSectorFromVirtioBlock() throws {
        try compare(FirmwareGuests.baseFlags + ["-drive", "file=\(try FirmwareGuests.diskCopy("a", "single")),if=virtio,format=raw"])
    }

    /// Two bootable disks: SeaBIOS boots the first PCI slot's unless bootindex= says otherwise;
    /// fw_cfg "bootorder" lists the paths by index (with strict=on, "HALT" last).
    @Test(arguments: [false, true])
    func bootOrderPicksTheDisk(bootIndex: Bool) throws {
        let a = try FirmwareGuests.diskCopy("a", "order\(bootIndex)"), b = try FirmwareGuests.diskCopy("b", "order\(bootIndex)")
        var flags = FirmwareGuests.baseFlags + ["-drive", "file=\(a),if=none,id=a,format=raw", "-drive", "file=\(b),if=none,id=b,format=raw"]
        if bootIndex {
            flags += ["-device", "virtio-blk-pci,drive=a,bootindex=2", "-device", "virtio-blk-pci,drive=b,bootindex=1,addr=1f.0",
                      "-boot", "strict=on"]
        } else {
            flags += ["-device", "virtio-blk-pci,drive=a", "-device", "virtio-blk-pci,drive=b"]
        }
        let v = try Harness.vmm(flags, timeoutSeconds: 90)
        let lines = Harness.serialLines(v.output)
        #expect(lines.contains("bootdisk: DISK \(bootIndex ? "B" : "A") booted from drive 80"), "\(v.output)")
        if bootIndex {
            #expect(lines.contains("bootorder 60 bytes: /pci@i0cf8/scsi@1f/disk@0,0 /pci@i0cf8/scsi@2/disk@0,0 HALT"), "\(v.output)")
        }
        guard let q = try Harness.qemuOrKnownIssue(flags, timeoutSeconds: 90) else { return }
        #expect(v.status == q.status, "vmm \(v.status), qemu \(q.status)")
        try OutputComparison.expectSame(vmm: lines, qemu: Harness.serialLines(q.output))
    }

    /// `-boot order=` is CMOS 0x3d/0x38, which SeaBIOS reads for the legacy order: with the
    /// network first and no network device, the disk still boots (after the failed entries).
    @Test func legacyBootOrderFromCMOS() throws {
        try compare(FirmwareGuests.baseFlags + ["-boot", "order=nc", "-drive", "file=\(try FirmwareGuests.diskCopy("a", "cmos")),if=virtio,format=raw"])
    }
}
