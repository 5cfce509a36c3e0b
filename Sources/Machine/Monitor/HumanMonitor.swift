/// The human monitor (`-monitor stdio`): QEMU's HMP commands that matter for this VMM.
///
/// The monitor only interprets command lines; what each `info` shows comes from providers the
/// machine supplies, so the monitor can be tested without a VM. QEMU: monitor/hmp-cmds.c.
public struct HumanMonitor: Sendable {
    /// What the monitor can ask the machine.
    public struct Providers: Sendable {
        /// `info mtree` (false) or `info mtree -f` (true).
        public var memoryTree: @Sendable (_ flat: Bool) -> String
        /// `info ioeventfds`: each ioeventfd with address, flags, kernel-or-userspace and hits.
        public var ioeventfds: @Sendable () -> String
        /// `info status`.
        public var status: @Sendable () -> String
        /// `quit`: stop the VM.
        public var quit: @Sendable () -> Void
        /// `info pci`.
        public var pci: @Sendable () -> String
        /// `stop`, `cont`, `system_reset`, `system_powerdown`, `system_wakeup` (the last
        /// answers an error text, or "" when it woke the machine).
        public var stop: @Sendable () -> Void
        /// `cont`: resume the vCPUs. QEMU: hmp_cont().
        public var cont: @Sendable () -> Void
        /// `system_reset`. QEMU: hmp_system_reset().
        public var systemReset: @Sendable () -> Void
        /// `system_powerdown`: the ACPI power button. QEMU: hmp_system_powerdown().
        public var systemPowerdown: @Sendable () -> Void
        /// `system_wakeup`: an error text, or "" when it woke the machine. QEMU: hmp_system_wakeup().
        public var systemWakeup: @Sendable () -> String

        /// Providers for each command; those with defaults do nothing (or answer "") when not given.
        public init(
            memoryTree: @escaping @Sendable (Bool) -> String,
            ioeventfds: @escaping @Sendable () -> String,
            status: @escaping @Sendable () -> String,
            quit: @escaping @Sendable () -> Void,
            pci: @escaping @Sendable () -> String = { "" },
            stop: @escaping @Sendable () -> Void = {},
            cont: @escaping @Sendable () -> Void = {},
            systemReset: @escaping @Sendable () -> Void = {},
            systemPowerdown: @escaping @Sendable () -> Void = {},
            systemWakeup: @escaping @Sendable () -> String = { "" }
        ) {
            self.systemWakeup = systemWakeup
            self.stop = stop
            self.cont = cont
            self.systemReset = systemReset
            self.systemPowerdown = systemPowerdown
            self.pci = pci
            self.memoryTree = memoryTree
            self.ioeventfds = ioeventfds
            self.status = status
            self.quit = quit
        }
    }

    /// The result of one command line.
    public enum Outcome: Sendable, Equatable {
        /// Print this text (possibly empty) and read the next command.
        case output(String)
        /// The VM is being stopped: stop reading.
        case quit
    }

    /// What the commands ask the machine.
    public let providers: Providers

    /// A monitor answering from `providers`.
    public init(providers: Providers) {
        self.providers = providers
    }

    /// The banner QEMU prints when the monitor starts.
    public static let banner = "QEMU 7.2.0 monitor - type 'help' for more information (swift-vmm)"

    /// The prompt.
    public static let prompt = "(qemu) "

    static let help = """
        help|?                 -- show this help
        info mtree [-f]        -- show the memory tree (-f: each address space's flat view)
        info ioeventfds        -- show ioeventfds: address, flags, kernel or userspace, hits
        info pci               -- show the PCI functions, their BARs and interrupt pins
        info status            -- show the VM status
        stop|s                 -- stop emulation
        cont|c                 -- resume emulation
        system_reset           -- reset the system
        system_powerdown       -- send system power down event
        quit|q                 -- quit the emulator

        """

    /// Interprets one command line.
    public func execute(_ line: String) -> Outcome {
        let words = line.split(whereSeparator: { $0 == " " || $0 == "\t" }).map(String.init)
        guard let command = words.first else { return .output("") }
        switch command {
        case "help", "?", "h":
            return .output(Self.help)
        case "quit", "q":
            providers.quit()
            return .quit
        case "stop", "s":
            providers.stop()
            return .output("")
        case "cont", "c":
            providers.cont()
            return .output("")
        case "system_reset":
            providers.systemReset()
            return .output("")
        case "system_powerdown":
            providers.systemPowerdown()
            return .output("")
        case "system_wakeup":
            return .output(providers.systemWakeup())
        case "info", "i":
            guard words.count >= 2 else {
                return .output("info: missing argument (mtree, ioeventfds, pci, status)\n")
            }
            switch words[1] {
            case "mtree":
                let flags = words.dropFirst(2)
                if let bad = flags.first(where: { $0 != "-f" }) {
                    return .output("info mtree: unsupported option '\(bad)' (only -f)\n")
                }
                return .output(providers.memoryTree(flags.contains("-f")))
            case "ioeventfds":
                return .output(providers.ioeventfds())
            case "status":
                return .output(providers.status())
            case "pci":
                return .output(providers.pci())
            default:
                return .output("info: unknown item '\(words[1])' (mtree, ioeventfds, pci, status)\n")
            }
        default:
            return .output("unknown command: '\(command)'\n")
        }
    }
}
