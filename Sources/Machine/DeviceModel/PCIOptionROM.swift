import Devices
import Loader
import Memory
import VMMSys

/// A PCI device's expansion ROM from `romfile=`: the file found as QEMU finds firmware (the name
/// itself, the `-L` directories, then QEMU's data directories), in a ROM region whose size is
/// the file's rounded up to a power of two (at least 16 bytes) and zero-padded, named
/// "DRIVER.rom" as QEMU's `info mtree` shows it. With `rombar=1` (the default) it sits behind
/// the ROM BAR at config 0x30, where firmware finds, copies and runs it; with `rombar=0` the
/// machine offers it to firmware as a fw_cfg "genroms/" file instead (`PCFirmware`).
/// QEMU: pci_add_option_rom() (hw/pci/pci.c).
enum PCIOptionROM {
    /// QEMU refuses ROM files larger than this.
    static let maximumSize: UInt64 = 2 << 30

    /// The ROM region for `instance`'s `romfile=`, or nil when it names none or `rombar=0`.
    /// - Throws: `MachineError` in QEMU's words: "failed to find romfile", "is empty",
    ///   "too large (size cannot exceed 2 GiB)", or the read error.
    static func region(for instance: DeviceInstance, dataDirectories: [String]) throws -> MemoryRegion? {
        guard let name = instance.string("romfile"), !name.isEmpty, instance.unsigned("rombar") != 0 else { return nil }
        let bytes = try contents(name, driver: instance.driver, dataDirectories: dataDirectories)
        var size: UInt64 = 16
        while size < UInt64(bytes.count) { size <<= 1 }
        let rom = try MemoryRegion.rom(name: "\(instance.driver).rom", size: size)
        guard rom.ramBlock?.write(bytes, offset: 0) == true else {
            throw MachineError("-device \(instance.driver): romfile \"\(name)\" could not be loaded")
        }
        return rom
    }

    /// The bytes of ROM file `name`, checked as QEMU checks them.
    static func contents(_ name: String, driver: String, dataDirectories: [String]) throws -> [UInt8] {
        let prefix = "-device \(driver)"
        let path = FirmwareLocator.find(name, dataDirectories: dataDirectories) ?? name
        guard let status = HostEnvironment.fileStatus(path) else { throw MachineError("\(prefix): failed to find romfile \"\(name)\"") }
        guard status.size > 0 else { throw MachineError("\(prefix): romfile \"\(name)\" is empty") }
        guard status.size <= maximumSize else {
            throw MachineError("\(prefix): romfile \"\(name)\" too large (size cannot exceed 2 GiB)")
        }
        do {
            return try MultibootLoader.readFile(path, what: "option ROM")
        } catch {
            throw MachineError("\(prefix): \(error)")
        }
    }
}
