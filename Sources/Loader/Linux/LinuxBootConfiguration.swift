/// What the machine tells the Linux loader besides the kernel bytes (QEMU `-kernel`,
/// `-append`, `-initrd` with a bzImage).
public struct LinuxBootConfiguration: Sendable {
    /// The kernel's path, named in errors about the kernel.
    public var kernelPath: String
    /// The kernel command line (QEMU `-append`), passed as is: unlike Multiboot, Linux does
    /// not expect the image name as its first word.
    public var commandLine: String
    /// The initial RAM disk's bytes, or `nil` for none. When `nil` and `initrdPath` is set,
    /// `LinuxLoader.load(configuration:into:)` reads the file.
    public var initrd: [UInt8]?
    /// The initrd's path, named in errors about the initrd ("initrd" when `nil`).
    public var initrdPath: String?
    /// The BIOS E820 map copied into `boot_params` (at most 128 entries). When it is not
    /// empty, everything the loader places must lie inside one of its `.ram` entries.
    public var memoryMap: [E820Entry]
    /// RAM size below 4 GiB: the kernel and the initrd must end at or below it.
    public var ramBelow4G: UInt64

    /// A configuration for the kernel at `kernelPath`; the rest as described above.
    public init(kernelPath: String, commandLine: String = "", initrd: [UInt8]? = nil,
                initrdPath: String? = nil, memoryMap: [E820Entry] = [], ramBelow4G: UInt64) {
        self.kernelPath = kernelPath
        self.commandLine = commandLine
        self.initrd = initrd
        self.initrdPath = initrdPath
        self.memoryMap = memoryMap
        self.ramBelow4G = ramBelow4G
    }
}
