import VMMSys

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
    /// Devices in creation order: the serial ports `-serial` implies, every `-device`, then the
    /// virtio-blk devices `-drive if=virtio` implies (QEMU's order).
    public var devices: [DeviceInstance] = []
    /// Character backends (`-chardev`, and the `serialN` ones `-serial` creates).
    public var chardevs: [ChardevSpec] = []
    /// `-object` backends (entropy sources).
    public var objects: [ObjectSpec] = []
    /// ACPI tables for the guest (`-no-acpi` turns them off).
    public var acpi = true
    /// Disk images from `-drive`.
    public var drives: [DriveSpec] = []
    /// QMP monitors (`-qmp unix:PATH,server=on,wait=off`, `-qmp tcp:127.0.0.1:PORT,…`).
    public var qmp: [MonitorSocketSpec] = []
    /// `-S`: the vCPUs wait for QMP `cont` (run state prelaunch).
    public var startPaused = false
    /// `-no-reboot`: a guest reset ends the VM instead of restarting it.
    public var noReboot: Bool = false
    /// `-name`.
    public var name: String?
    /// `-cpu` model name; every model gets the host's CPUID (see README).
    public var cpuModel: String = "host"
    /// `-monitor`.
    public var monitor: MonitorSpec = .none
    /// `-bios FILE`: the firmware image (found as QEMU finds it, `FirmwareLocator`); nil means
    /// QEMU's default, bios-256k.bin, when the machine runs firmware at all.
    public var bios: String?
    /// `-L DIR`: directories searched for firmware before the system's QEMU data directories.
    public var dataDirectories: [String] = []
    /// `-boot`.
    public var boot = BootOptions()
    /// `-nographic`: fw_cfg tells firmware there is no graphics (SeaBIOS then talks on COM1).
    public var noGraphic = false
    /// Whether the machine runs firmware from the reset vector: without `-kernel`, or whenever
    /// `-bios` is given. `-kernel` alone keeps the direct boot (the machine does firmware's work).
    public var runsFirmware: Bool { kernel == nil || bios != nil }
    /// Non-fatal notes about accepted-but-ignored options, printed once at start.
    public var warnings: [String] = []

    public init() {}
}

/// A character backend: where a serial port's (or console's) bytes go and come from.
/// QEMU: a Chardev (`-chardev stdio|file|null,id=ID`; `-serial X` creates "serialN").
public struct ChardevSpec: Sendable, Equatable {
    public enum Backend: Sendable, Equatable {
        case stdio
        case file(String)
        case null
    }
    public var id: String
    public var backend: Backend

    public init(id: String, backend: Backend) {
        self.id = id
        self.backend = backend
    }
}

/// A `-object` backend. QEMU: a user-creatable QOM object.
public struct ObjectSpec: Sendable, Equatable {
    /// `rng-random` or `rng-builtin`.
    public var type: String
    public var id: String
    public var isRNG: Bool { type == "rng-random" || type == "rng-builtin" }

    public init(type: String, id: String) {
        self.type = type
        self.id = id
    }
}

/// A human monitor backend (`-monitor stdio | none`).
public enum MonitorSpec: Sendable, Equatable {
    case none
    case stdio
}

/// A listening socket a monitor serves (`unix:PATH` or `tcp:HOST:PORT`, `server=on`, with
/// `wait=on` holding the machine until the first client connects). QEMU: a socket chardev.
public struct MonitorSocketSpec: Sendable, Equatable {
    public var address: SocketAddress
    public var wait: Bool

    public init(address: SocketAddress, wait: Bool) {
        self.address = address
        self.wait = wait
    }
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

extension MachineConfiguration {
    /// A `-device` string parsed against the registry (for building configurations in code).
    public static func device(_ text: String) throws(ConfigurationError) -> DeviceInstance { try DeviceRegistry.parse(text) }
}

extension MachineConfiguration {
    /// The chardev on standard input/output, if any (its serial port gets stdin).
    public var stdioSerialChardev: String? {
        chardevs.first { $0.backend == .stdio }?.id
    }
}
