/// The result of loading a Multiboot kernel: where it starts and what the CPU must hold.
///
/// The caller sets the CPU state the specification requires (section 3.2): EAX and EBX below,
/// 32-bit protected mode (CR0.PE = 1, CR0.PG = 0), flat 4 GiB read/execute CS and read/write
/// DS/ES/FS/GS/SS, EFLAGS.VM = 0 and IF = 0, A20 enabled, EIP = `entryPoint`.
///
/// QEMU: what `load_multiboot()` passes its `multiboot.bin` option ROM in fw_cfg
/// (`FW_CFG_KERNEL_ENTRY`, the information at `FW_CFG_INITRD_ADDR`), which sets that state.
public struct MultibootBootInfo: Equatable, Sendable {
    /// The value EAX must hold so the kernel knows a Multiboot loader started it.
    public static let bootloaderMagic: UInt32 = 0x2BAD_B002

    /// Where execution starts (EIP).
    public var entryPoint: UInt32
    /// Guest-physical address of the Multiboot information structure.
    public var infoAddress: UInt32
    /// Guest-physical range covering the kernel image and its BSS.
    public var kernelRange: Range<UInt64>
    /// Guest-physical range of each module, in the order given.
    public var moduleRanges: [Range<UInt64>]
    /// The first byte past everything the loader wrote (kernel, information, modules).
    public var endOfImage: UInt64

    /// Initial EAX.
    public var eax: UInt32 { Self.bootloaderMagic }
    /// Initial EBX: the information structure's address.
    public var ebx: UInt32 { infoAddress }
}
