import KVM
import Memory

/// Putting a vCPU straight into the mode a loaded program expects, the way a bootloader
/// would leave it: 32-bit flat protected mode (Multiboot, Linux's 32-bit entry) or 64-bit long
/// mode with identity paging (the doorbell guest, Linux's 64-bit entry). The GDT goes in guest
/// RAM so interrupts and `iret` work.
///
/// QEMU has no counterpart: it starts every vCPU at the reset vector and leaves the mode
/// switch to guest code, SeaBIOS and the `multiboot.bin`/`linuxboot_dma.bin` option ROMs.
/// Setting the registers directly is what Firecracker and cloud-hypervisor do.
public enum X86Boot {
    /// Where the flat GDT is written.
    public static let gdtAddress: UInt64 = 0x500
    /// The 64-bit code selector of the flat GDT ``writeGDT(_:)`` writes (for Multiboot and
    /// the doorbell guest).
    public static let code64Selector: UInt16 = 0x08
    /// The flat 4 GiB read/write data selector of that GDT (every data segment and the stack).
    public static let dataSelector: UInt16 = 0x10
    /// The flat 4 GiB 32-bit code selector of that GDT.
    public static let code32Selector: UInt16 = 0x18
    /// `__BOOT_CS`, the code selector Linux's boot protocols want.
    public static let linuxCodeSelector: UInt16 = 0x10
    /// `__BOOT_DS`, the data selector Linux's boot protocols want.
    public static let linuxDataSelector: UInt16 = 0x18

    static let code64Descriptor: UInt64 = 0x00af_9b00_0000_ffff
    static let code32Descriptor: UInt64 = 0x00cf_9b00_0000_ffff
    static let dataDescriptor: UInt64 = 0x00cf_9300_0000_ffff

    /// The flat GDT: null, 64-bit code, data, 32-bit code.
    public static func writeGDT(_ memory: GuestMemory) throws(GuestMemoryError) {
        try write([0, code64Descriptor, dataDescriptor, code32Descriptor], memory)
    }

    static func write(_ gdt: [UInt64], _ memory: GuestMemory) throws(GuestMemoryError) {
        for (i, e) in gdt.enumerated() { try memory.store(e, at: gdtAddress + UInt64(i) * 8) }
    }

    /// 32-bit flat protected mode, paging off, interrupts off — the Multiboot entry state —
    /// at `entry` with EAX/EBX as given. QEMU: the state multiboot.bin leaves.
    public static func enterProtectedMode32(_ vcpu: VCPU, memory: GuestMemory, entry: UInt32, eax: UInt32, ebx: UInt32) throws {
        try writeGDT(memory)
        var r = Registers()
        r.rip = UInt64(entry)
        r.rax = UInt64(eax)
        r.rbx = UInt64(ebx)
        try enter(vcpu, memory: memory, code: code32Selector, data: dataSelector, longMode: false, registers: r)
    }

    /// 64-bit long mode with identity paging of the low 4 GiB (tables at `pageTables`),
    /// interrupts off, at `entry` with stack `stack`. (QEMU's guests get there themselves.)
    public static func enterLongMode(_ vcpu: VCPU, memory: GuestMemory, pageTables: UInt64 = 0x9000,
                                     entry: UInt64, stack: UInt64) throws {
        try writeGDT(memory)
        var r = Registers()
        r.rip = entry
        r.rsp = stack
        try enter(vcpu, memory: memory, code: code64Selector, data: dataSelector, longMode: true, pageTables: pageTables, registers: r)
    }

    /// The Linux boot protocol's entry state: 64-bit (long mode, identity-mapped low 4 GiB,
    /// RSI = boot_params) or 32-bit (flat protected mode, paging off, ESI = boot_params), with
    /// __BOOT_CS/__BOOT_DS loaded and interrupts off. (Documentation/arch/x86/boot.rst.)
    public static func enterLinux(_ vcpu: VCPU, memory: GuestMemory, entry: UInt64, bootParams: UInt64,
                                  longMode: Bool, pageTables: UInt64 = 0x9000) throws {
        try write([0, 0, longMode ? code64Descriptor : code32Descriptor, dataDescriptor], memory)
        var r = Registers()
        r.rip = entry
        r.rsi = bootParams
        try enter(vcpu, memory: memory, code: linuxCodeSelector, data: linuxDataSelector, longMode: longMode,
                  pageTables: pageTables, registers: r)
    }

    /// Loads flat segments with the given selectors, the mode's control registers (with the
    /// identity page tables for long mode) and `registers` (RFLAGS: interrupts off).
    static func enter(_ vcpu: VCPU, memory: GuestMemory, code: UInt16, data: UInt16, longMode: Bool,
                      pageTables: UInt64 = 0x9000, registers: Registers) throws {
        var s = try vcpu.getSpecialRegisters()
        s.cs = Segment(base: 0, limit: 0xffff_ffff, selector: code, type: 0xb, present: true,
                       db: !longMode, s: true, l: longMode, g: true)
        let flat = Segment(base: 0, limit: 0xffff_ffff, selector: data, type: 3, present: true, db: true, s: true, g: true)
        s.ds = flat; s.es = flat; s.fs = flat; s.gs = flat; s.ss = flat
        s.gdt = DescriptorTable(base: gdtAddress, limit: 4 * 8 - 1)
        s.idt = DescriptorTable(base: 0, limit: 0)
        s.tr = Segment(base: 0, limit: 0x67, selector: 0, type: 11, present: true, s: false)
        s.ldt = Segment(base: 0, limit: 0xffff, selector: 0, type: 2, present: true, s: false)
        if longMode {
            try writeIdentityPageTables(memory, at: pageTables)
            s.cr3 = pageTables
            s.cr4 = 0x20            // PAE
            s.cr0 = 0x8000_0011     // PG | ET | PE
            s.efer = 0x500          // LME | LMA
        } else {
            s.cr0 = 0x11            // PE | ET
            s.cr4 = 0
            s.efer = 0
        }
        try vcpu.setSpecialRegisters(s)
        var r = registers
        r.rflags = 0x2
        try vcpu.setRegisters(r)
    }

    /// Identity page tables for the low 4 GiB with 2 MiB pages at `base` (6 pages: PML4,
    /// PDPT, four page directories).
    public static func writeIdentityPageTables(_ memory: GuestMemory, at base: UInt64) throws(GuestMemoryError) {
        let pml4 = base, pdpt = base + 0x1000, pd = base + 0x2000
        try memory.store(pdpt | 0x3, at: pml4)
        for i in 0..<UInt64(4) {
            try memory.store((pd + i * 0x1000) | 0x3, at: pdpt + i * 8)
        }
        var entries = [UInt8]()
        entries.reserveCapacity(4 * 4096)
        for i in 0..<UInt64(2048) {
            let e = (i << 21) | 0x83          // present, writable, 2 MiB page
            for b in 0..<8 { entries.append(UInt8(truncatingIfNeeded: e >> (8 * UInt64(b)))) }
        }
        try memory.write(entries, at: pd)
    }
}
