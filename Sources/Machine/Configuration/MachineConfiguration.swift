/// Everything needed to build a machine, whichever command-line form produced it.
///
/// The QEMU-compatible form (`vmm -kernel K -m 256M -device pci-testdev ...`) and the native form
/// (`vmm run --kernel K --memory 256M --device pci-testdev ...`) both parse into this value, so the
/// two can never build different machines from the same request.
public struct MachineConfiguration: Sendable, Equatable {
    /// Guest RAM in bytes. QEMU's pc default is 128 MiB.
    public var memorySize: UInt64 = 128 << 20
    /// Number of vCPUs started (`-smp N`).
    public var cpuCount: Int = 1
    /// Maximum vCPUs reported to the guest (`-smp maxcpus=`); at least `cpuCount`.
    public var maxCPUs: Int = 1
    /// Multiboot (or Linux) kernel to load.
    public var kernel: String?
    /// Kernel command line (`-append`).
    public var append: String = ""
    /// `-initrd`: for Multiboot, a comma-separated module list (`",,"` is a literal comma).
    public var initrd: String?
    /// Where COM1's output goes.
    public var serial: SerialBackendSpec = .stdio
    /// Devices requested with `-device`.
    public var devices: [DeviceSpec] = []
    /// ACPI tables for the guest (`-no-acpi` turns them off).
    public var acpi = true
    /// Disk images from `-drive`.
    public var drives: [DriveSpec] = []
    /// `-no-reboot`: a guest reset ends the VM instead of restarting it.
    public var noReboot: Bool = false
    /// `-name`.
    public var name: String?
    /// `-cpu` model name; every model gets the host's CPUID (see README).
    public var cpuModel: String = "host"
    /// `-monitor`.
    public var monitor: MonitorSpec = .none
    /// Non-fatal notes about accepted-but-ignored options, printed once at start.
    public var warnings: [String] = []

    public init() {}
}

/// A serial backend (`-serial stdio | file:PATH | none | null`).
public enum SerialBackendSpec: Sendable, Equatable {
    case stdio
    case file(String)
    case none
}

/// A human monitor backend (`-monitor stdio | none`).
public enum MonitorSpec: Sendable, Equatable {
    case none
    case stdio
}

/// A device requested on the command line, with its properties checked.
public enum DeviceSpec: Sendable, Equatable {
    /// `isa-debug-exit,iobase=0xf4,iosize=0x4` (QEMU defaults: iobase 0x501, iosize 2).
    case isaDebugExit(iobase: UInt16, iosize: UInt16)
    /// `pc-testdev`.
    case pcTestdev
    /// `pci-testdev`.
    case pciTestdev
    /// `virtio-rng-pci`.
    case virtioRNGPCI
    /// `virtio-blk-pci,drive=ID[,serial=S]`.
    case virtioBlockPCI(drive: String, serial: String = "")
}

/// A disk image (`-drive file=PATH,if=none|virtio,id=ID,format=raw[,readonly=on]`).
public struct DriveSpec: Sendable, Equatable {
    public enum Interface: Sendable, Equatable { case none, virtio }
    public var id: String
    public var file: String
    public var interface: Interface
    public var readOnly: Bool

    public init(id: String, file: String, interface: Interface, readOnly: Bool) {
        self.id = id; self.file = file; self.interface = interface; self.readOnly = readOnly
    }
}
