/// What the machine tells the Multiboot loader besides the kernel bytes (QEMU `-kernel`,
/// `-append`, `-initrd` with a Multiboot image).
public struct MultibootConfiguration: Sendable {
    /// The kernel's path: named in errors and, as QEMU does, the first word of the kernel's
    /// command line.
    public var kernelPath: String
    /// Kernel arguments (QEMU `-append`); the kernel sees "`kernelPath` `commandLine`".
    public var commandLine: String
    /// Boot modules, loaded in order (QEMU `-initrd`; see `MultibootModule.parseList`).
    public var modules: [MultibootModule]
    /// Guest-physical ranges the loader may fill: the kernel, the information structure and
    /// the modules must each lie inside one of them.
    public var usableRAM: [Range<UInt64>]
    /// RAM size below 4 GiB, from which `mem_upper` is computed as QEMU does.
    public var ramBelow4G: UInt64
    /// The memory map handed to the kernel (`mmap_*`); omitted when empty.
    public var memoryMap: [E820Entry]
    /// `boot_loader_name`; QEMU says "qemu".
    public var bootLoaderName: String

    /// A configuration for the kernel at `kernelPath`; the rest as described above.
    public init(kernelPath: String, commandLine: String = "", modules: [MultibootModule] = [],
                usableRAM: [Range<UInt64>], ramBelow4G: UInt64, memoryMap: [E820Entry] = [],
                bootLoaderName: String = "qemu") {
        self.kernelPath = kernelPath
        self.commandLine = commandLine
        self.modules = modules
        self.usableRAM = usableRAM
        self.ramBelow4G = ramBelow4G
        self.memoryMap = memoryMap
        self.bootLoaderName = bootLoaderName
    }
}
