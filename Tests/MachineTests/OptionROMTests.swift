import Foundation
import Testing

/// `romfile=` on a PCI device (`Guests/firmware/optionrom.S`, a 512-byte ROM for pci-testdev):
/// behind the ROM BAR, SeaBIOS finds, copies and runs it at POST (it prints a line), and
/// `Guests/tests/rombar.c` then sizes, enables and reads the ROM BAR; with `rombar=0` the ROM
/// goes to firmware as a fw_cfg "genroms/" file instead. The same output and status as QEMU.
/// Without firmware nothing runs the ROM (a deliberate difference: the direct boot has no
/// option-ROM stage); the ROM BAR is still placed where SeaBIOS would place it.
/// QEMU: pci_add_option_rom(), pci_register_bar(PCI_ROM_SLOT); SeaBIOS optionrom_setup().
@Suite(.enabled(if: Harness.kvmAvailable, "requires read/write access to /dev/kvm"),
       .enabled(if: GuestKernels.toolchainAvailable, "needs gcc, as and ld to build the test kernels"))
struct OptionROMTests {
    static var rom: String { get throws { try GuestKernels.built.get() + "/optionrom.rom" } }

    static func flags(kernel: String, romDevice: String) throws -> [String] {
        ["-machine", "accel=kvm", "-nodefaults", "-display", "none", "-serial", "stdio",
         "-device", "isa-debug-exit,iobase=0xf4,iosize=0x4", "-device", "pc-testdev", "-device", romDevice,
         "-kernel", try GuestKernels.path(kernel), "-append", ""]
    }

    static let romRan = "optionrom: initialized by firmware, AX=0000"

    @Test(arguments: [true, false])
    func romBARUnderFirmwareAndDirect(firmware: Bool) throws {
        if firmware { try #require(FirmwareGuests.biosInstalled, "\(FirmwareGuests.biosMissing)") }
        let flags = try Self.flags(kernel: "rombar", romDevice: "pci-testdev,romfile=\(try Self.rom)")
        let v = try Harness.vmm((firmware ? ["-bios", "bios-256k.bin"] : []) + flags, timeoutSeconds: 120)
        let lines = Harness.serialLines(v.output)
        #expect(v.status == 1 && lines.contains("PASS rombar"), "\(v.output)")
        #expect(lines.contains("sizing: fffffe01 (enable written 1), fffffe00 (enable written 0)"), "\(v.output)")
        #expect(lines.contains(Self.romRan) == firmware, "\(v.output)")
        guard let q = try Harness.qemuOrKnownIssue(flags, timeoutSeconds: 120) else { return }
        #expect(q.status == v.status)
        try OutputComparison.expectSame(vmm: lines, qemu: Harness.serialLines(q.output), differences: firmware ? [] : [
            .deliberate(qemu: Self.romRan, "without firmware no option-ROM stage runs the ROM"),
        ])
    }

    /// rombar=0: no ROM BAR, the ROM is an option ROM file for firmware, which still runs it.
    @Test func rombarZeroIsAFirmwareOptionROM() throws {
        try #require(FirmwareGuests.biosInstalled, "\(FirmwareGuests.biosMissing)")
        let flags = try Self.flags(kernel: "hello", romDevice: "pci-testdev,romfile=\(try Self.rom),rombar=0")
        let v = try Harness.vmm(["-bios", "bios-256k.bin"] + flags, timeoutSeconds: 120)
        let lines = Harness.serialLines(v.output)
        #expect(v.status == 1 && lines.contains(Self.romRan) && lines.contains("PASS hello"), "\(v.output)")
        guard let q = try Harness.qemuOrKnownIssue(flags, timeoutSeconds: 120) else { return }
        #expect(q.status == v.status)
        try OutputComparison.expectSame(vmm: lines, qemu: Harness.serialLines(q.output))
    }

    /// A missing or empty ROM file is one line naming it, status 1, as QEMU refuses it.
    @Test func badROMFilesAreOneLine() throws {
        let empty = FileManager.default.temporaryDirectory.appendingPathComponent("empty-\(getpid()).rom").path
        _ = FileManager.default.createFile(atPath: empty, contents: Data())
        defer { try? FileManager.default.removeItem(atPath: empty) }
        for (file, words) in [("/nonexistent/x.rom", "failed to find romfile \"/nonexistent/x.rom\""), (empty, "romfile \"\(empty)\" is empty")] {
            let flags = try Self.flags(kernel: "hello", romDevice: "pci-testdev,romfile=\(file)")
            let v = try Harness.vmm(flags)
            #expect(v.status == 1 && v.output.contains(words) && v.output.split(separator: "\n").count == 1, "\(v.output)")
            guard let q = try Harness.qemuOrKnownIssue(flags) else { continue }
            #expect(q.status == 1 && q.output.contains(words), "\(q.output)")
        }
    }
}
