/// One entry of the BIOS E820 memory map the machine describes to the guest; the Multiboot
/// loader copies these into the information structure's memory map.
public struct E820Entry: Equatable, Sendable {
    /// E820 address range types (ACPI "Address Range Types").
    public enum Kind: UInt32, Sendable {
        case ram = 1
        case reserved = 2
        case acpiReclaimable = 3
        case acpiNVS = 4
        case unusable = 5
    }

    public var base: UInt64
    public var length: UInt64
    public var kind: Kind

    public init(base: UInt64, length: UInt64, kind: Kind) {
        self.base = base
        self.length = length
        self.kind = kind
    }
}
