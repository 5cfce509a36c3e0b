import Foundation
import Loader
import Testing
@testable import Machine

/// The firmware options as QEMU takes them (-bios, -L, -boot, -debugcon, bootindex=), where
/// the firmware is found, and the one-line errors a user gets.
@Suite struct FirmwareConfigurationTests {
    func configuration(_ args: [String]) throws -> MachineConfiguration {
        try MachineConfiguration(qemu: QEMUCommandLine.parse(args).arguments)
    }

    @Test func firmwareRunsWithoutKernelOrWithBIOS() throws {
        #expect(try configuration(["-nodefaults"]).runsFirmware)
        #expect(try !configuration(["-kernel", "k.elf"]).runsFirmware, "-kernel alone keeps the direct boot")
        let c = try configuration(["-kernel", "k.elf", "-bios", "bios-256k.bin", "-L", "/a", "-L", "/b"])
        #expect(c.runsFirmware && c.bios == "bios-256k.bin" && c.dataDirectories == ["/a", "/b"])
    }

    @Test func bootOptionsParseAsQEMU() throws {
        var b = BootOptions()
        try QEMUValueParsing.boot("dc", into: &b)
        #expect(b.order == "dc")
        try QEMUValueParsing.boot("order=nc,once=d,menu=on,splash-time=500,reboot-timeout=1000,strict=on", into: &b)
        #expect(b.order == "nc" && b.once == "d" && b.menu == true && b.splashTime == 500 && b.rebootTimeout == 1000 && b.strict)
        for bad in ["order=x", "order=cc", "order=abcd", "order=e", "menu=maybe", "splash-time=70000", "reboot-timeout=-2",
                    "reboot-timeout=65536", "colour=blue"] {
            var o = BootOptions()
            #expect(throws: ConfigurationError.self, "\(bad)") { try QEMUValueParsing.boot(bad, into: &o) }
        }
    }

    @Test func debugconMakesAChardevAndADevice() throws {
        let c = try configuration(["-debugcon", "file:/tmp/x.log"])
        #expect(c.chardevs.contains(ChardevSpec(id: "debugcon", backend: .file("/tmp/x.log"))))
        let d = try #require(c.devices.first { $0.driver == "isa-debugcon" })
        #expect(d.string("chardev") == "debugcon" && d.unsigned("iobase") == 0xe9 && d.unsigned("readback") == 0xe9)
        #expect(throws: ConfigurationError.self) { try configuration(["-debugcon", "stdio", "-debugcon", "null"]) }
        #expect(throws: ConfigurationError.self) { try configuration(["-device", "isa-debugcon,chardev=nope"]) }
        #expect(throws: ConfigurationError.self) { try configuration(["-device", "isa-debugcon,iobase=0x10000"]) }
    }

    @Test func bootIndexIsCheckedAndOrdered() throws {
        let drives = ["-drive", "file=/dev/null,if=none,id=a,format=raw", "-drive", "file=/dev/null,if=none,id=b,format=raw"]
        let c = try configuration(drives + ["-device", "virtio-blk-pci,drive=a,bootindex=5", "-device", "virtio-blk-pci,drive=b,bootindex=2"])
        #expect(c.bootDevices.map(\.index) == [2, 5])
        #expect(throws: ConfigurationError.self) {
            try configuration(drives + ["-device", "virtio-blk-pci,drive=a,bootindex=1", "-device", "virtio-blk-pci,drive=b,bootindex=1"])
        }
        #expect(throws: ConfigurationError.self) { try configuration(drives + ["-device", "virtio-blk-pci,drive=a,bootindex=-2"]) }
        #expect(throws: ConfigurationError.self, "only devices that boot take bootindex") {
            try configuration(["-device", "pci-testdev,bootindex=1"])
        }
    }

    @Test func mainJobOnlyWithoutMachineOptions() throws {
        #expect(try QEMUCommandLine.parse([]).mainJobOnly)
        #expect(try QEMUCommandLine.parse(["-n", "10", "-json"]).mainJobOnly)
        #expect(try !QEMUCommandLine.parse(["-nodefaults"]).mainJobOnly)
    }

    @Test func searchPathIsQEMUs() throws {
        #expect(FirmwareLocator.searchPath(dataDirectories: ["/x"]) == ["/x", "/usr/share/qemu", "/usr/share/seabios", "/usr/lib/ipxe/qemu"])
        let help = try QEMUCommandLine.parse(["-L", "/x", "-L", "help"])
        #expect(help.deviceHelp == "/x\n/usr/share/qemu\n/usr/share/seabios\n/usr/lib/ipxe/qemu\n")
    }

    /// -L directories come before the system's, and a readable name as given wins over both,
    /// as qemu_find_file() searches.
    @Test func locatorOrder() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("fwdir-\(getpid())").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let image = [UInt8](repeating: 0xf4, count: 0x1_0000)
        _ = FileManager.default.createFile(atPath: dir + "/bios-256k.bin", contents: Data(image))
        #expect(FirmwareLocator.find("bios-256k.bin", dataDirectories: [dir]) == dir + "/bios-256k.bin")
        #expect(FirmwareLocator.find(dir + "/bios-256k.bin", dataDirectories: []) == dir + "/bios-256k.bin")
        #expect(FirmwareLocator.find("no-such-rom.bin", dataDirectories: [dir]) == nil)
        let loaded = try BIOSImage.load(nil, dataDirectories: [dir])
        #expect(loaded.bytes == image && loaded.address == 0xffff_0000 && loaded.isaSize == 0x1_0000)
        // Sizes QEMU refuses: not a multiple of 64 KiB, or empty.
        _ = FileManager.default.createFile(atPath: dir + "/odd.bin", contents: Data(count: 0x1_0001))
        _ = FileManager.default.createFile(atPath: dir + "/empty.bin", contents: Data())
        #expect(throws: LoaderError.self) { try BIOSImage.load("odd.bin", dataDirectories: [dir]) }
        #expect(throws: LoaderError.self) { try BIOSImage.load("empty.bin", dataDirectories: [dir]) }
    }

    /// A missing firmware file: one line naming the file, every place looked in, and (for the
    /// default) the package; status 1.
    @Test(.enabled(if: Harness.kvmAvailable, "requires /dev/kvm"))
    func missingFirmwareIsOneLine() throws {
        let run = try Harness.vmm(["-nodefaults", "-display", "none", "-bios", "no-such-bios.bin", "-L", "/nonexistent-dir"])
        #expect(run.status == 1 && run.output.split(separator: "\n").count == 1, "\(run.output)")
        #expect(run.output.contains("no-such-bios.bin") && run.output.contains("/nonexistent-dir/no-such-bios.bin")
                && run.output.contains("/usr/share/seabios/no-such-bios.bin"), "\(run.output)")
        let hint = BIOSImage.notFound("bios-256k.bin", dataDirectories: ["/d"]).description
        #expect(hint.hasPrefix("bios-256k.bin: could not load PC BIOS: not found; looked for bios-256k.bin, /d/bios-256k.bin, /usr/share/qemu/bios-256k.bin")
                && hint.contains("apt-get install seabios qemu-system-data"), "\(hint)")
    }
}
