import Foundation
import Loader

/// What the firmware tests need: SeaBIOS installed where QEMU looks, the boot disks built by
/// Guests/build.sh, and the common command line.
enum FirmwareGuests {
    /// bios-256k.bin on QEMU's search path (`apt-get install seabios qemu-system-data`).
    static var biosInstalled: Bool { FirmwareLocator.find(BIOSImage.defaultName, dataDirectories: []) != nil }
    static let biosMissing = "needs SeaBIOS (apt-get install seabios qemu-system-data): bios-256k.bin not on QEMU's search path"

    /// A built boot disk image ("a" or "b").
    static func disk(_ label: String) throws -> String { try GuestKernels.built.get() + "/bootdisk-\(label).img" }

    /// A private copy of a built boot disk, so runs never share an image QEMU may lock.
    static func diskCopy(_ label: String, _ tag: String) throws -> String {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("bootdisk-\(label)-\(tag)-\(getpid()).img").path
        try? FileManager.default.removeItem(atPath: path)
        try FileManager.default.copyItem(atPath: try disk(label), toPath: path)
        return path
    }

    /// The flags of the command line without a drive: no default devices, COM1 on
    /// stdio, isa-debug-exit at 0xf4 (the boot disk's verdict port).
    static let baseFlags = ["-machine", "accel=kvm", "-nodefaults", "-display", "none", "-serial", "stdio",
                            "-device", "isa-debug-exit,iobase=0xf4,iosize=0x4"]

    /// A SeaBIOS debug log file next to the built kernels, per run.
    static func logPath(_ tag: String) throws -> String { try GuestKernels.built.get() + "/seabios-\(tag)-\(getpid()).log" }

    /// Flags for SeaBIOS's debug port (0x402) into `path`.
    static func debugLog(_ path: String) -> [String] {
        ["-chardev", "file,id=seabios,path=\(path)", "-device", "isa-debugcon,iobase=0x402,chardev=seabios"]
    }
}
