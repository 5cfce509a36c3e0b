/// The result of loading a Linux bzImage: where things went and where the CPU starts.
///
/// The caller picks one of the two entry protocols of the Linux x86 boot protocol and sets
/// the CPU as `cpuState64` or `cpuState32` describes (both skip the kernel's 16-bit setup
/// code, so no real-mode BIOS services are needed).
///
/// QEMU: the addresses `x86_load_linux()` hands its `linuxboot_dma.bin` option ROM through
/// fw_cfg (`FW_CFG_KERNEL_ADDR`, `FW_CFG_SETUP_ADDR`, `FW_CFG_CMDLINE_ADDR`,
/// `FW_CFG_INITRD_ADDR`); that ROM enters the 16-bit setup code instead.
public struct LinuxBootInfo: Equatable, Sendable {
    /// The 64-bit entry point, `kernelLoadAddress + 0x200`, when the header announces one
    /// (`XLF_KERNEL_64`, `xloadflags` bit 0, protocol 2.12+); `nil` for a 32-bit-only kernel.
    public var entryPoint64: UInt64?
    /// The 32-bit protected-mode entry point: the kernel's load address, which the loader
    /// also stores as `code32_start` in `boot_params` (the header's value is the default
    /// load address, 1 MiB for every bzImage).
    public var entryPoint32: UInt32
    /// Guest-physical address of the zero page (`struct boot_params`, 4 KiB).
    public var bootParamsAddress: UInt64
    /// Where the protected-mode kernel (the file after its setup sectors) was copied.
    public var kernelLoadAddress: UInt64
    /// Memory the kernel occupies or claims before it reads the memory map: the loaded
    /// image, and `init_size` bytes from where it decompresses itself (protocol 2.10+).
    public var kernelRange: Range<UInt64>
    /// Where the initrd was placed, or `nil` without one.
    public var initrdRange: Range<UInt64>?
    /// Guest-physical address of the NUL-terminated command line.
    public var commandLineAddress: UInt64
    /// The kernel's boot protocol version, e.g. `0x020f` for 2.15.
    public var protocolVersion: UInt16

    /// A result with these fields (``LinuxLoader`` makes them; tests and other loaders may too).
    public init(entryPoint64: UInt64?, entryPoint32: UInt32, bootParamsAddress: UInt64,
                kernelLoadAddress: UInt64, kernelRange: Range<UInt64>, initrdRange: Range<UInt64>?,
                commandLineAddress: UInt64, protocolVersion: UInt16) {
        self.entryPoint64 = entryPoint64
        self.entryPoint32 = entryPoint32
        self.bootParamsAddress = bootParamsAddress
        self.kernelLoadAddress = kernelLoadAddress
        self.kernelRange = kernelRange
        self.initrdRange = initrdRange
        self.commandLineAddress = commandLineAddress
        self.protocolVersion = protocolVersion
    }

    /// The CPU state at the 64-bit entry (boot protocol "64-bit Boot Protocol"), or `nil`
    /// when the kernel has no 64-bit entry.
    ///
    /// Long mode with paging on; the kernel range, the zero page and the command line must
    /// be identity mapped (mapping the first `identityMapEnd` bytes 1:1 covers them). A GDT
    /// must hold flat 4 GiB descriptors at selectors 0x10 (code, execute/read; 64-bit) and
    /// 0x18 (data, read/write); CS = 0x10, DS = ES = SS = 0x18. Interrupts off (RFLAGS.IF = 0),
    /// RSI = `bootParamsAddress`, RIP = `entryPoint64`.
    public var cpuState64: LinuxBootCPUState? {
        guard let entry = entryPoint64 else { return nil }
        return LinuxBootCPUState(mode: .longMode, instructionPointer: entry, rsi: bootParamsAddress,
                                 identityMapEnd: identityMapEnd)
    }

    /// The CPU state at the 32-bit entry (boot protocol "32-bit Boot Protocol").
    ///
    /// Flat protected mode with paging off; a GDT with flat 4 GiB descriptors at selectors
    /// 0x10 (code, execute/read) and 0x18 (data, read/write); CS = 0x10, DS = ES = SS = 0x18.
    /// Interrupts off, ESI = `bootParamsAddress`, EBP = EDI = EBX = 0, EIP = `entryPoint32`.
    public var cpuState32: LinuxBootCPUState {
        LinuxBootCPUState(mode: .protectedMode, instructionPointer: UInt64(entryPoint32),
                          rsi: bootParamsAddress, identityMapEnd: nil)
    }

    /// The first byte past everything the 64-bit entry needs identity mapped, rounded up to
    /// 2 MiB (the kernel, the initrd, the zero page and the command line).
    public var identityMapEnd: UInt64 {
        var end = max(kernelRange.upperBound, bootParamsAddress + 4096, commandLineAddress + 1)
        if let initrd = initrdRange { end = max(end, initrd.upperBound) }
        let twoMiB: UInt64 = 2 << 20
        return (end + twoMiB - 1) & ~(twoMiB - 1)
    }
}

/// The register state one of the Linux entry protocols requires, independent of KVM.
/// QEMU has none (it runs the setup code); Firecracker and cloud-hypervisor set the 64-bit
/// one the same way.
public struct LinuxBootCPUState: Equatable, Sendable {
    /// The CPU mode at entry.
    public enum Mode: Equatable, Sendable {
        /// 64-bit long mode, paging on (CR0.PE, CR0.PG, CR4.PAE, EFER.LME/LMA).
        case longMode
        /// 32-bit protected mode, paging off (CR0.PE only).
        case protectedMode
    }

    /// GDT selector of the flat code segment (`__BOOT_CS`).
    public static let codeSelector: UInt16 = 0x10
    /// GDT selector of the flat data segment (`__BOOT_DS`), for DS, ES and SS.
    public static let dataSelector: UInt16 = 0x18

    /// Long mode (64-bit entry) or protected mode (32-bit entry).
    public var mode: Mode
    /// RIP / EIP.
    public var instructionPointer: UInt64
    /// RSI / ESI: the zero page's address.
    public var rsi: UInt64
    /// EBP: zero (required by the 32-bit protocol, harmless for 64-bit).
    public var rbp: UInt64 = 0
    /// EDI: zero, as EBP.
    public var rdi: UInt64 = 0
    /// EBX: zero, as EBP.
    public var rbx: UInt64 = 0
    /// RFLAGS: only the reserved bit 1; IF = 0 (interrupts off).
    public var rflags: UInt64 = 0x2
    /// Long mode only: the page tables must map `[0, identityMapEnd)` 1:1.
    public var identityMapEnd: UInt64?
}
