import Devices
import Loader
import Logging
import Memory

/// What QEMU's pc machine gives firmware besides the firmware itself: the CMOS boot and
/// equipment registers, the BIOS image mapped below 4 GiB and below 1 MiB, the option-ROM area,
/// and the fw_cfg items and files SeaBIOS reads (RAM map, boot order, ACPI through the table
/// loader). QEMU: pc_memory_init(), x86_bios_rom_init(), pc_cmos_init(), fw_cfg_arch_create(),
/// fw_cfg_common_realize(), fw_cfg_machine_ready(), acpi_setup().
enum PCFirmware {
    /// The option-ROM area SeaBIOS copies ROMs into, PCI memory at 0xc0000 (128 KiB). QEMU:
    /// "pc.rom", PC_ROM_MIN_VGA / PC_ROM_SIZE.
    static let optionROMBase: UInt64 = 0xc_0000
    static let optionROMSize: UInt64 = 0x2_0000

    /// CMOS 0x3d/0x38 (boot order: a nibble per device, floppy 1, disk 2, CD-ROM 3, network 4;
    /// 0x38's low bit would skip the floppy signature check, left 0 as QEMU's default) and the
    /// equipment byte 0x14 (FPU, PS/2 mouse; no floppy). QEMU: set_boot_dev(), pc_cmos_init(),
    /// pc_cmos_init_late() with no floppy or IDE drive.
    static func setBootRegisters(_ cmos: CMOS, boot: BootOptions) {
        let order = boot.once ?? boot.order
        let nibbles: [UInt8] = order.map { c -> UInt8 in
            switch c {
            case "a", "b": 1
            case "c": 2
            case "d": 3
            case "n": 4
            default: 0
            }
        } + [0, 0, 0]
        cmos.setByte(nibbles[1] << 4 | nibbles[0], at: 0x3d)
        cmos.setByte(nibbles[2] << 4, at: 0x38)
        cmos.setByte(0x02 | 0x04, at: 0x14)
    }

    /// Maps the BIOS: the whole image ROM at the top of 4 GiB in PCI memory, its last 128 KiB
    /// aliased below 1 MiB ("isa-bios", priority 1, which the PAM windows show until firmware
    /// shadows itself), and the empty, read-only option-ROM area ("pc.rom", priority 1).
    /// Returns the ROM region; its contents are written by `load`. QEMU: x86_bios_rom_init(),
    /// pc_memory_init().
    static func mapBIOS(_ image: BIOSImage, into pci: MemoryRegion) throws -> MemoryRegion {
        let bios = try MemoryRegion.rom(name: "pc.bios", size: UInt64(image.bytes.count))
        pci.addSubregion(MemoryRegion.alias(name: "isa-bios", target: bios, offset: UInt64(image.bytes.count) - image.isaSize,
                                            size: UInt128(image.isaSize)),
                         at: 0x10_0000 - image.isaSize, priority: 1)
        pci.addSubregion(bios, at: image.address)
        pci.addSubregion(try MemoryRegion.rom(name: "pc.rom", size: optionROMSize), at: optionROMBase, priority: 1)
        return bios
    }

    /// fw_cfg as QEMU's pc gives it to SeaBIOS. Numbered items: the boot menu flag, NUMA (no
    /// nodes), IRQ0 override, the legacy e820 reservation table. Files: "etc/e820",
    /// "etc/boot-fail-wait", "etc/boot-menu-wait" (with -boot splash-time), "bootorder" and
    /// "bios-geometry", "etc/system-states", and ACPI as "etc/acpi/tables", "etc/acpi/rsdp"
    /// with the "etc/table-loader" script (none with -no-acpi).
    /// QEMU: fw_cfg_arch_create(), fw_cfg_common_realize() (FW_CFG_BOOT_MENU), fw_cfg_reboot(),
    /// fw_cfg_bootsplash(), fw_cfg_machine_ready(), acpi_pm1_cnt_init() ("etc/system-states"),
    /// acpi_setup().
    static func addItems(_ fwCfg: FwCfg, configuration c: MachineConfiguration, layout: PCMemoryLayout, amdHost: Bool,
                         bootOrder: [String], logger: Logger) throws {
        fwCfg.setInteger(FwCfg.Key.bootMenu, UInt16(c.boot.menu == true ? 1 : 0))
        // FW_CFG_NUMA: node count 0, then a node per possible APIC ID (all 0).
        fwCfg.setItem(FwCfg.Key.numa, [UInt8](repeating: 0, count: 8 * (1 + max(c.maxCPUs, c.cpuCount))))
        fwCfg.setInteger(FwCfg.Key.irq0Override, UInt32(1))
        let e820 = layout.qemuE820Table(amdHost: amdHost)
        fwCfg.setItem(FwCfg.Key.e820Table, Self.legacyReservations(e820))

        var files: [(String, [UInt8])] = [
            ("etc/e820", Self.e820File(e820)),
            ("etc/boot-fail-wait", FwCfgBytes.le(UInt32(bitPattern: c.boot.rebootTimeout))),
            ("bootorder", Self.bootOrderFile(bootOrder, strict: c.boot.strict)),
            ("bios-geometry", []),
            // S0 on; S1, S2 off; S3 on as type 1; S4 on as type 2; S5 on. QEMU: acpi_pm1_cnt_init().
            ("etc/system-states", [0x80, 0x00, 0x00, 0x81, 0x82, 0x80]),
        ]
        if let ms = c.boot.splashTime { files.append(("etc/boot-menu-wait", FwCfgBytes.le(ms))) }
        if c.acpi {
            var acpi = ACPIConfiguration(cpuCount: c.cpuCount)
            acpi.s3 = true
            let linked = try ACPILinkedTables.build(acpi)
            files += [(ACPILinkedTables.tablesFile, linked.tables), (ACPILinkedTables.rsdpFile, linked.rsdp),
                      (ACPILinkedTables.loaderFile, linked.loader.padded(to: ACPILinkedTables.loaderAlignment))]
        }
        // A PCI device's ROM with rombar=0: offered as an option ROM file instead of a ROM BAR.
        // QEMU: pci_add_option_rom() → rom_add_option().
        for d in c.devices where d.unsigned("rombar") == 0 {
            guard let name = d.string("romfile"), !name.isEmpty else { continue }
            let base = name.split(separator: "/").last.map(String.init) ?? name
            files.append(("genroms/" + base, try PCIOptionROM.contents(name, driver: d.driver, dataDirectories: c.dataDirectories)))
        }
        for (name, data) in files { try fwCfg.addFile(name: name, data: data) }
    }

    /// `-kernel` with firmware, as QEMU boots it: the kernel in fw_cfg's items and QEMU's
    /// option ROM that loads it, from the firmware search path, offered as "genroms/…" with
    /// boot index 0. A Linux kernel (setup header "HdrS") goes in the setup, kernel, command
    /// line and initrd items for "linuxboot_dma.bin", which runs its real-mode setup; anything
    /// else must be Multiboot: the kernel (with `-initrd` modules and `-append`) in the kernel
    /// and initrd items for "multiboot_dma.bin". Returns the ROM's boot-order entry.
    /// QEMU: x86_load_linux() (→ load_multiboot()), pc_memory_init() → rom_add_option().
    static func addKernel(_ fwCfg: FwCfg, configuration c: MachineConfiguration, layout: PCMemoryLayout,
                          kernelPath: String) throws -> (index: Int64, path: String) {
        let kernel = try MultibootLoader.readFile(kernelPath, what: "kernel")
        let rom: String
        if LinuxLoader.isLinuxKernel(kernel) {
            let initrd = try c.initrd.map { path throws(LoaderError) in try MultibootLoader.readFile(path, what: "initrd") }
            let image = try LinuxFirmwareImage.build(kernel: kernel, path: kernelPath, commandLine: c.append, initrd: initrd,
                                                     initrdPath: c.initrd, ramBelow4G: layout.below4G)
            fwCfg.setSetup(image.setup, address: image.setupAddress)
            fwCfg.setKernel(image.kernel, address: image.kernelAddress)
            fwCfg.setCommandLine(image.commandLine, address: image.commandLineAddress)
            if let data = image.initrd, let address = image.initrdAddress { fwCfg.setInitrd(data, address: address) }
            rom = LinuxFirmwareImage.romName
        } else {
            let image = try MultibootFirmwareImage.build(
                kernel: kernel, path: kernelPath, commandLine: c.append, initrd: c.initrd, ramBelow4G: layout.below4G,
                readFile: { path throws(LoaderError) in try MultibootLoader.readFile(path, what: "module") })
            fwCfg.setInteger(FwCfg.Key.kernelEntry, image.entry)
            fwCfg.setKernel(image.data, address: image.loadAddress)
            fwCfg.setInitrd(image.info, address: MultibootFirmwareImage.infoAddress)
            rom = MultibootFirmwareImage.romName
        }
        try fwCfg.addFile(name: "genroms/" + rom, data: try optionROM(rom, dataDirectories: c.dataDirectories))
        return (0, "/rom@genroms/" + rom)
    }

    /// An option ROM file from the firmware search path. QEMU: rom_add_file() ("Could not open
    /// option rom").
    static func optionROM(_ name: String, dataDirectories: [String]) throws -> [UInt8] {
        guard let path = FirmwareLocator.find(name, dataDirectories: dataDirectories) else {
            throw LoaderError(name, "could not open option rom: not found; looked for "
                + FirmwareLocator.describeSearch(name, dataDirectories: dataDirectories)
                + " (QEMU's option ROMs come with the qemu-system-data package)")
        }
        return try MultibootLoader.readFile(path, what: "option ROM")
    }

    /// Boot-order entries by index; two with one index are refused. QEMU: add_boot_device_path()
    /// ("Two devices with same boot index %d").
    static func sortedBootOrder(_ entries: [(index: Int64, path: String)]) throws -> [String] {
        let sorted = entries.sorted { $0.index < $1.index }
        for (a, b) in zip(sorted, sorted.dropFirst()) where a.index == b.index {
            throw MachineError("Two devices with same boot index \(a.index)")
        }
        return sorted.map(\.path)
    }

    /// "etc/e820": each entry u64 address, u64 length, u32 type. QEMU: e820_table.
    static func e820File(_ table: [PCMemoryLayout.MapEntry]) -> [UInt8] {
        table.flatMap { FwCfgBytes.le($0.base) + FwCfgBytes.le($0.length) + FwCfgBytes.le($0.kind.rawValue) }
    }

    /// FW_CFG_E820_TABLE: u32 count of the non-RAM entries, then 16 slots of 20 bytes.
    /// QEMU: e820_reserve (E820_NR_ENTRIES = 16), filled by e820_add_entry().
    static func legacyReservations(_ table: [PCMemoryLayout.MapEntry]) -> [UInt8] {
        let reserved = table.filter { $0.kind != .usable }.prefix(16)
        var out = FwCfgBytes.le(UInt32(reserved.count)) + e820File(Array(reserved))
        out += [UInt8](repeating: 0, count: 4 + 16 * 20 - out.count)
        return out
    }

    /// "bootorder": the boot devices' firmware paths by boot index, one per line, NUL-ended
    /// (empty with none); `strict` appends "HALT". QEMU: get_boot_devices_list().
    static func bootOrderFile(_ paths: [String], strict: Bool) -> [UInt8] {
        guard !paths.isEmpty else { return [] }
        var lines = paths
        if strict { lines.append("HALT") }
        return Array(lines.joined(separator: "\n").utf8) + [0]
    }
}

/// Little-endian encodings for fw_cfg items.
enum FwCfgBytes {
    static func le<T: FixedWidthInteger>(_ v: T) -> [UInt8] {
        (0..<(T.bitWidth / 8)).map { UInt8(truncatingIfNeeded: v >> (8 * $0)) }
    }
}
