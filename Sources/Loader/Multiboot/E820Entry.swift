/// One entry of the BIOS E820 memory map the machine describes to the guest; the Multiboot
/// loader copies these into the information structure's memory map, the Linux loader into
/// `boot_params`. QEMU: `struct e820_entry` (hw/i386/e820_memory_layout.h).
public struct E820Entry: Equatable, Sendable {
    /// E820 address range types (ACPI "Address Range Types").
    public enum Kind: UInt32, Sendable {
        /// Usable RAM. QEMU: `E820_RAM`.
        case ram = 1
        /// Not for the OS. QEMU: `E820_RESERVED`.
        case reserved = 2
        /// RAM holding ACPI tables, usable once they are read. QEMU: `E820_ACPI`.
        case acpiReclaimable = 3
        /// ACPI non-volatile storage. QEMU: `E820_NVS`.
        case acpiNVS = 4
        /// Memory with errors. QEMU: `E820_UNUSABLE`.
        case unusable = 5
    }

    /// Guest-physical start.
    public var base: UInt64
    /// Length in bytes.
    public var length: UInt64
    /// What the range is.
    public var kind: Kind

    /// The range `[base, base + length)` of `kind`. QEMU: `e820_add_entry()`.
    public init(base: UInt64, length: UInt64, kind: Kind) {
        self.base = base
        self.length = length
        self.kind = kind
    }
}
