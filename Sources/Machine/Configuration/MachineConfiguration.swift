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
    /// Network backends (`-netdev`, and those `-nic` creates).
    public var netdevs: [NetdevSpec] = []
    /// Monitors on chardevs (`-mon chardev=ID[,mode=readline|control]`).
    public var chardevMonitors: [ChardevMonitorSpec] = []
    /// `-global DRIVER.PROP=VALUE` defaults for device properties.
    public var globals: [GlobalProperty] = []
    /// Non-fatal notes about accepted-but-ignored options, printed once at start.
    public var warnings: [String] = []

    /// QEMU's pc defaults: 128 MiB, one vCPU, no kernel or devices, ACPI on. QEMU: pc_machine_class_init() (default_ram_size).
    public init() {}
}

/// A character backend: where a serial port's (or console's) bytes go and come from.
/// QEMU: a Chardev (`-chardev stdio|file|pipe|socket|pty|null,id=ID`; `-serial X` creates "serialN").
public struct ChardevSpec: Sendable, Equatable {
    /// Where the backend's bytes go. QEMU: ChardevBackendKind.
    public enum Backend: Sendable, Equatable {
        /// The VMM's standard input and output. QEMU: chardev "stdio".
        case stdio
        /// Output to a file, truncated first.
        case file(String)
        /// Output discarded, input never arrives. QEMU: chardev "null".
        case null
        /// Output appended to a file (`file,append=on`).
        case appendFile(String)
        /// FIFOs: PATH.in and PATH.out, or PATH both ways.
        case pipe(String)
        /// A new pseudo-terminal (its slave's path is printed at start).
        case pty
        /// A unix or TCP socket, listening (`server=on`, waiting for a client at start unless
        /// `wait=off`) or connecting.
        case socket(address: SocketAddress, server: Bool, wait: Bool)
    }
    /// The chardev's `id=`, which devices name in `chardev=`.
    public var id: String
    /// Where its bytes go.
    public var backend: Backend

    /// A backend named `id`.
    public init(id: String, backend: Backend) {
        self.id = id
        self.backend = backend
    }
}

/// A network backend (`-netdev tap,...`). QEMU: a Netdev.
public struct NetdevSpec: Sendable, Equatable {
    /// The netdev's `id=`, which NICs name in `netdev=`.
    public var id: String
    /// The tap's name (nil: with `fd=`, or a name the kernel picks).
    public var ifname: String?
    /// Queue pairs (`queues=`, or the number of `fds=`).
    public var queues: Int
    /// `vnet_hdr=`: whether the tap carries virtio-net headers. QEMU: net_init_tap() vnet_hdr.
    public var vnetHeader: TapVnetHeader
    /// Descriptors already attached to a tap (`fd=` / `fds=`).
    public var fds: [Int32]

    /// A tap backend; `queues` and `fds` default to one queue pair and a tap opened by name.
    public init(id: String, ifname: String?, queues: Int = 1, vnetHeader: TapVnetHeader = .auto, fds: [Int32] = []) {
        self.id = id; self.ifname = ifname; self.queues = queues; self.vnetHeader = vnetHeader; self.fds = fds
    }
}

/// A monitor on a chardev (`-mon chardev=ID,mode=readline|control`). QEMU: MonitorOptions.
public struct ChardevMonitorSpec: Sendable, Equatable {
    /// Which protocol the monitor speaks on the chardev. QEMU: MonitorMode.
    public enum Mode: Sendable, Equatable {
        /// The human monitor.
        case readline
        /// QMP.
        case control
    }
    /// The `chardev=` id the monitor serves.
    public var chardev: String
    /// Human monitor (readline) or QMP (control).
    public var mode: Mode
    /// `pretty=on`: QMP replies indented over several lines.
    public var pretty: Bool

    /// A monitor on chardev `chardev`.
    public init(chardev: String, mode: Mode, pretty: Bool = false) {
        self.chardev = chardev; self.mode = mode; self.pretty = pretty
    }
}

/// A `-object` backend. QEMU: a user-creatable QOM object.
public struct ObjectSpec: Sendable, Equatable {
    /// `rng-random` or `rng-builtin`.
    public var type: String
    /// The object's `id=`, which devices name (virtio-rng-pci `rng=`).
    public var id: String
    /// Whether the object is an entropy source a virtio-rng-pci device may use.
    public var isRNG: Bool { type == "rng-random" || type == "rng-builtin" }

    /// An object of QOM type `type` named `id` (the parser accepts only rng-random and rng-builtin).
    public init(type: String, id: String) {
        self.type = type
        self.id = id
    }
}

/// A human monitor backend (`-monitor stdio | none`).
public enum MonitorSpec: Sendable, Equatable {
    /// No human monitor (`-monitor none`, the default).
    case none
    /// The human monitor on the VMM's standard input and output (`-monitor stdio`).
    case stdio
}

/// A listening socket a monitor serves (`unix:PATH` or `tcp:HOST:PORT`, `server=on`, with
/// `wait=on` holding the machine until the first client connects). QEMU: a socket chardev.
public struct MonitorSocketSpec: Sendable, Equatable {
    /// The unix path or TCP host and port listened on.
    public var address: SocketAddress
    /// `wait=on`: the machine starts only after the first client connects.
    public var wait: Bool

    /// A monitor socket listening on `address`.
    public init(address: SocketAddress, wait: Bool) {
        self.address = address
        self.wait = wait
    }
}

/// A disk image (`-drive file=PATH,if=none|virtio,id=ID,format=raw[,readonly=on]`).
public struct DriveSpec: Sendable, Equatable {
    /// `if=`: `none` (a backend for `-device ...,drive=ID`) or `virtio` (a virtio-blk-pci is created for it). QEMU: BlockInterfaceType.
    public enum Interface: Sendable, Equatable { case none, virtio }
    /// The drive's `id=`, which block devices name in `drive=`.
    public var id: String
    /// Path of the raw image file (`file=`).
    public var file: String
    /// Whether a device is created for the drive (`if=`).
    public var interface: Interface
    /// `readonly=on`: the image is opened read-only and virtio-blk offers VIRTIO_BLK_F_RO.
    public var readOnly: Bool

    /// A drive of `file` named `id`.
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

    /// The sockets of the QMP monitors (`-chardev socket,id=X,server=on,... -mon chardev=X,mode=control`):
    /// for the QMP server to listen on (`SocketListener(address)`). The chardev layer leaves
    /// these chardevs alone.
    public var controlMonitorSockets: [(chardev: String, address: SocketAddress, wait: Bool)] {
        chardevMonitors.compactMap { m in
            guard m.mode == .control, let spec = chardevs.first(where: { $0.id == m.chardev }),
                  case .socket(let address, true, let wait) = spec.backend else { return nil }
            return (m.chardev, address, wait)
        }
    }
}
