import Memory
import Synchronization

/// Errors adding fw_cfg items (configuration mistakes, never guest-caused).
public enum FwCfgError: Error, Equatable, CustomStringConvertible {
    /// A file name longer than fw_cfg's 55 bytes (56 with its NUL). QEMU: FW_CFG_MAX_FILE_PATH.
    case nameTooLong(String)
    /// More files than `fileSlots`. QEMU: fw_cfg_add_file_callback() ("fw_cfg: no more slots").
    case tooManyFiles(limit: Int)

    /// The error as one line for the user.
    public var description: String {
        switch self {
        case .nameTooLong(let n): return "fw_cfg file name '\(n)' is longer than 55 bytes"
        case .tooManyFiles(let l): return "fw_cfg holds at most \(l) files"
        }
    }
}

/// QEMU's firmware configuration device, legacy I/O interface: a 16-bit write to port 0x510
/// selects an item; byte reads of port 0x511 walk it, past its end (or for unknown keys)
/// reading 0. Items: the signature "QEMU", the feature bitmap (traditional interface; DMA when
/// `FwCfgDMA` is attached), RAM size, CPU counts, the file directory, optional kernel/initrd/command-line items,
/// and named files (`addFile`) whose selectors follow from 0x0020 in name order, as QEMU keeps
/// its directory sorted. Guest writes to the data port are ignored (as on QEMU since 2.4).
///
/// One region, "fwcfg", of 2 ports at 0x510 as on QEMU: offset 0 takes the 16-bit selector
/// write, a byte access at either offset is the data port. QEMU: fw_cfg (hw/nvram/fw_cfg.c),
/// "fw_cfg_io".
public final class FwCfg: Resettable {
    /// "fwcfg": the selector and data ports (2 ports).
    public let region: MemoryRegion
    /// The pc machine's fw_cfg ports, 0x510 (selector) and 0x511 (data). QEMU: FW_CFG_IO_BASE.
    public static let defaultBase: UInt64 = 0x510

    /// Well-known keys. QEMU: include/standard-headers/linux/qemu_fw_cfg.h.
    public enum Key {
        /// The signature "QEMU". QEMU: FW_CFG_SIGNATURE.
        public static let signature: UInt16 = 0x0000
        /// The feature bitmap (bit 0 traditional interface, bit 1 DMA). QEMU: FW_CFG_ID.
        public static let id: UInt16 = 0x0001
        /// The VM's UUID (16 bytes, zero here). QEMU: FW_CFG_UUID.
        public static let uuid: UInt16 = 0x0002
        /// Guest RAM size in bytes (64-bit). QEMU: FW_CFG_RAM_SIZE.
        public static let ramSize: UInt16 = 0x0003
        /// 1 when there is no graphics console (`-nographic`). QEMU: FW_CFG_NOGRAPHIC.
        public static let noGraphic: UInt16 = 0x0004
        /// vCPUs at start-up (16-bit). QEMU: FW_CFG_NB_CPUS.
        public static let nbCPUs: UInt16 = 0x0005
        /// Where firmware should load the kernel. QEMU: FW_CFG_KERNEL_ADDR.
        public static let kernelAddress: UInt16 = 0x0007
        /// The kernel's size in bytes. QEMU: FW_CFG_KERNEL_SIZE.
        public static let kernelSize: UInt16 = 0x0008
        /// The command line's address on other QEMU targets; x86 uses `cmdlineAddress`. QEMU: FW_CFG_KERNEL_CMDLINE.
        public static let kernelCmdline: UInt16 = 0x0009
        /// Where firmware should load the initrd. QEMU: FW_CFG_INITRD_ADDR.
        public static let initrdAddress: UInt16 = 0x000a
        /// The initrd's size in bytes. QEMU: FW_CFG_INITRD_SIZE.
        public static let initrdSize: UInt16 = 0x000b
        /// The legacy boot device. QEMU: FW_CFG_BOOT_DEVICE.
        public static let bootDevice: UInt16 = 0x000c
        /// The NUMA description (no nodes here). QEMU: FW_CFG_NUMA.
        public static let numa: UInt16 = 0x000d
        /// 1 when the boot menu is enabled (`-boot menu=on`). QEMU: FW_CFG_BOOT_MENU.
        public static let bootMenu: UInt16 = 0x000e
        /// The most vCPUs the machine may have (16-bit). QEMU: FW_CFG_MAX_CPUS.
        public static let maxCPUs: UInt16 = 0x000f
        /// The kernel's entry point. QEMU: FW_CFG_KERNEL_ENTRY.
        public static let kernelEntry: UInt16 = 0x0010
        /// The kernel's bytes. QEMU: FW_CFG_KERNEL_DATA.
        public static let kernelData: UInt16 = 0x0011
        /// The initrd's bytes. QEMU: FW_CFG_INITRD_DATA.
        public static let initrdData: UInt16 = 0x0012
        /// Where firmware should put the command line. QEMU: FW_CFG_CMDLINE_ADDR.
        public static let cmdlineAddress: UInt16 = 0x0013
        /// The command line's size, NUL included. QEMU: FW_CFG_CMDLINE_SIZE.
        public static let cmdlineSize: UInt16 = 0x0014
        /// The command line's bytes. QEMU: FW_CFG_CMDLINE_DATA.
        public static let cmdlineData: UInt16 = 0x0015
        /// Where firmware should load the Linux setup sectors. QEMU: FW_CFG_SETUP_ADDR.
        public static let setupAddress: UInt16 = 0x0016
        /// The setup sectors' size. QEMU: FW_CFG_SETUP_SIZE.
        public static let setupSize: UInt16 = 0x0017
        /// The setup sectors' bytes. QEMU: FW_CFG_SETUP_DATA.
        public static let setupData: UInt16 = 0x0018
        /// The file directory: a big-endian count, then one entry per file. QEMU: FW_CFG_FILE_DIR.
        public static let fileDir: UInt16 = 0x0019
        /// The first named file's selector; the others follow in name order. QEMU: FW_CFG_FILE_FIRST.
        public static let fileFirst: UInt16 = 0x0020
        /// x86 items (FW_CFG_ARCH_LOCAL + n). QEMU: hw/i386/fw_cfg.h.
        public static let acpiTables: UInt16 = 0x8000
        /// SMBIOS entries (not provided here). QEMU: FW_CFG_SMBIOS_ENTRIES.
        public static let smbiosEntries: UInt16 = 0x8001
        /// Whether IRQ0 is routed to IOAPIC pin 2. QEMU: FW_CFG_IRQ0_OVERRIDE.
        public static let irq0Override: UInt16 = 0x8002
        /// The legacy e820 reservations table. QEMU: FW_CFG_E820_TABLE.
        public static let e820Table: UInt16 = 0x8003
        /// Selector bits that are not part of the key (write channel, arch-local flag is kept).
        static let writeChannel: UInt16 = 0x4000
    }

    /// Files beyond this many are refused. QEMU: `file_slots` default.
    public static let fileSlots = 0x20

    struct State {
        var items: [UInt16: [UInt8]] = [:]
        var files: [(name: String, data: [UInt8])] = []
        var current: [UInt8] = []
        var offset = 0
    }

    let state: Mutex<State>

    /// Creates the device with the standard items for a guest of `ramSize` bytes and `cpus`
    /// boot CPUs (`maxCPUs` defaults to `cpus`).
    public init(ramSize: UInt64, cpus: UInt16, maxCPUs: UInt16? = nil) {
        var s = State()
        s.items[Key.signature] = Array("QEMU".utf8)
        s.items[Key.id] = FwCfg.le(UInt32(1))
        s.items[Key.uuid] = [UInt8](repeating: 0, count: 16)
        s.items[Key.ramSize] = FwCfg.le(ramSize)
        s.items[Key.noGraphic] = FwCfg.le(UInt16(1))
        s.items[Key.nbCPUs] = FwCfg.le(cpus)
        s.items[Key.maxCPUs] = FwCfg.le(maxCPUs ?? cpus)
        s.items[Key.fileDir] = FwCfg.directory([])
        let state = Mutex(s)
        self.state = state
        let owner = RegionOwner<FwCfg>()
        region = .io(name: "fwcfg", size: 2, ops: owner.ops(read: FwCfg.ioRead, write: FwCfg.ioWrite, unbound: 0,
                                                             valid: .upTo(2), implementation: .upTo(2)))
        owner.set(self)
    }

    /// Item 0 selected again. QEMU: fw_cfg_reset().
    public func reset() { select(Key.signature) }

    /// Maps the selector/data ports at `base` (0x510).
    public func map(into io: MemoryRegion, at base: UInt64 = FwCfg.defaultBase) {
        io.addSubregion(region, at: base)
    }

    // MARK: Items

    /// Sets (or replaces) a numbered item. QEMU: `fw_cfg_add_bytes`.
    public func setItem(_ key: UInt16, _ data: [UInt8]) {
        state.withLock { $0.items[key & ~Key.writeChannel] = data }
    }

    /// The bytes of a numbered item, if set.
    public func item(_ key: UInt16) -> [UInt8]? {
        state.withLock { $0.items[key & ~Key.writeChannel] }
    }

    /// Sets a numbered item to a little-endian integer. QEMU: `fw_cfg_add_i16/i32/i64`.
    public func setInteger<T: FixedWidthInteger>(_ key: UInt16, _ value: T) {
        setItem(key, FwCfg.le(value))
    }

    /// Kernel, initrd and command line items as QEMU's x86 `-kernel` path sets them for
    /// firmware that loads them (addresses where firmware should put them).
    public func setKernel(_ kernel: [UInt8], address: UInt32) {
        setInteger(Key.kernelAddress, address)
        setInteger(Key.kernelSize, UInt32(truncatingIfNeeded: kernel.count))
        setItem(Key.kernelData, kernel)
    }

    /// The initrd items (address, size, data), for firmware that loads it. QEMU: x86_load_linux().
    public func setInitrd(_ initrd: [UInt8], address: UInt32) {
        setInteger(Key.initrdAddress, address)
        setInteger(Key.initrdSize, UInt32(truncatingIfNeeded: initrd.count))
        setItem(Key.initrdData, initrd)
    }

    /// The command line, NUL-terminated as QEMU stores it.
    public func setCommandLine(_ cmdline: String, address: UInt32) {
        setCommandLine(Array(cmdline.utf8) + [0], address: address)
    }

    /// The command line's bytes (with their NUL) and where firmware should put them.
    /// QEMU: FW_CFG_CMDLINE_ADDR/_SIZE/_DATA in x86_load_linux().
    public func setCommandLine(_ bytes: [UInt8], address: UInt32) {
        setInteger(Key.cmdlineAddress, address)
        setInteger(Key.cmdlineSize, UInt32(truncatingIfNeeded: bytes.count))
        setItem(Key.cmdlineData, bytes)
    }

    /// A Linux kernel's real-mode setup sectors and where firmware should put them.
    /// QEMU: FW_CFG_SETUP_ADDR/_SIZE/_DATA in x86_load_linux().
    public func setSetup(_ setup: [UInt8], address: UInt32) {
        setInteger(Key.setupAddress, address)
        setInteger(Key.setupSize, UInt32(truncatingIfNeeded: setup.count))
        setItem(Key.setupData, setup)
    }

    /// Adds (or replaces) a named file. The directory stays sorted by name, so selectors of
    /// later-sorting files move up, exactly as QEMU assigns them. QEMU: `fw_cfg_add_file`.
    public func addFile(name: String, data: [UInt8]) throws(FwCfgError) {
        guard name.utf8.count <= 55 else { throw .nameTooLong(name) }
        let result: FwCfgError? = state.withLock { s in
            if let i = s.files.firstIndex(where: { $0.name == name }) {
                s.files[i].data = data
            } else {
                guard s.files.count < FwCfg.fileSlots else { return .tooManyFiles(limit: FwCfg.fileSlots) }
                let i = s.files.firstIndex { Array(name.utf8).lexicographicallyPrecedes(Array($0.name.utf8)) } ?? s.files.endIndex
                s.files.insert((name, data), at: i)
            }
            for (i, f) in s.files.enumerated() { s.items[Key.fileFirst + UInt16(i)] = f.data }
            s.items[Key.fileDir] = FwCfg.directory(s.files)
            return nil
        }
        if let result { throw result }
    }

    /// The selector of a named file, if present.
    public func selector(forFile name: String) -> UInt16? {
        state.withLock { s in s.files.firstIndex { $0.name == name }.map { Key.fileFirst + UInt16($0) } }
    }

    // MARK: Guest interface

    func ioRead(_ offset: UInt64, _ size: Int) -> UInt64 {
        // QEMU accepts only byte reads (of the data port); refuse a 16-bit read as unassigned.
        guard size == 1 else { return UInt64.max }
        return state.withLock { s in
            guard s.offset < s.current.count else { return 0 }
            defer { s.offset += 1 }
            return UInt64(s.current[s.offset])
        }
    }

    func ioWrite(_ offset: UInt64, _ value: UInt64, _ size: Int) {
        // Only a 16-bit write at the selector port selects; byte writes (the data port) are ignored.
        guard size == 2, offset == 0 else { return }
        select(UInt16(truncatingIfNeeded: value))
    }

    // MARK: Encoding

    static func le<T: FixedWidthInteger>(_ v: T) -> [UInt8] {
        (0..<(T.bitWidth / 8)).map { UInt8(truncatingIfNeeded: v >> (8 * $0)) }
    }

    static func be<T: FixedWidthInteger>(_ v: T) -> [UInt8] { le(v).reversed() }

    /// The file directory item: u32 BE count, then per file u32 BE size, u16 BE select,
    /// u16 reserved and a 56-byte NUL-padded name. QEMU: `FWCfgFiles`.
    static func directory(_ files: [(name: String, data: [UInt8])]) -> [UInt8] {
        var out = be(UInt32(files.count))
        for (i, f) in files.enumerated() {
            out += be(UInt32(truncatingIfNeeded: f.data.count))
            out += be(Key.fileFirst + UInt16(i))
            out += [0, 0]
            var name = Array(f.name.utf8.prefix(55))
            name += [UInt8](repeating: 0, count: 56 - name.count)
            out += name
        }
        return out
    }
}
