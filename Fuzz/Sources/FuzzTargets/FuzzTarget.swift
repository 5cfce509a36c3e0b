/// Every guest-facing (or user-facing) parser with a fuzz target. The same functions run under
/// libFuzzer (`Fuzz/run.sh`) and in `swift test`, which replays the committed seed corpus and
/// every regression input (`Tests/FuzzTargetsTests`).
public enum FuzzTarget: String, CaseIterable, Sendable {
    /// `VirtQueue.pop`/`push` over a fuzzed guest-memory image.
    case virtqueue
    /// virtio-pci common configuration, notify, ISR and device registers, queue service.
    case virtioPCI = "virtio-pci"
    /// PCI configuration mechanism #1 and config space of every function on the pc bus.
    case pciConfig = "pci-config"
    /// The MSI-X table, PBA and capability control.
    case msix
    /// fw_cfg's legacy I/O interface and its DMA interface.
    case fwcfg
    /// The 16550A UART.
    case serial
    /// Accesses into a random memory-region tree, checked against the flat-view oracle.
    case memory
    /// The Multiboot (ELF32, ELF64, a.out kludge) and Linux bzImage loaders.
    case loader
    /// The QEMU command line into a machine configuration.
    case cmdline
    /// virtio-net over virtio-pci: transmit, receive (merged or not), the control queue.
    case virtioNet = "virtio-net"
    /// virtio-serial over virtio-pci: MULTIPORT control messages, port data, host input.
    case virtioSerial = "virtio-serial"
    /// A QMP session fed a hostile byte stream.
    case qmp

    /// Runs one input. Throws when a check of the target fails; a trap in the code under test
    /// is a crash, as it would be in the VMM.
    public func run(_ data: [UInt8]) throws(FuzzFailure) {
        switch self {
        case .virtqueue: try fuzzVirtQueue(data)
        case .virtioPCI: try fuzzVirtIOPCI(data)
        case .pciConfig: try fuzzPCIConfig(data)
        case .msix: try fuzzMSIX(data)
        case .fwcfg: try fuzzFwCfg(data)
        case .serial: try fuzzSerial(data)
        case .memory: try fuzzMemoryDispatch(data)
        case .loader: try fuzzLoader(data)
        case .cmdline: try fuzzCommandLine(data)
        case .virtioNet: try fuzzVirtIONet(data)
        case .virtioSerial: try fuzzVirtIOSerial(data)
        case .qmp: try fuzzQMP(data)
        }
    }

    /// Hand-made meaningful inputs, written to `Fuzz/corpus/<target>/` (see `SeedCorpus`).
    public var seeds: [(name: String, bytes: [UInt8])] { SeedCorpus.seeds(for: self) }
}
