import KVM
import Memory

/// Putting a vCPU straight into the mode a loaded program expects, the way a bootloader
/// would leave it: 32-bit flat protected mode (Multiboot) or 64-bit long mode with identity
/// paging (the doorbell guest). The GDT goes in guest RAM so interrupts and `iret` work.
public enum X86Boot {
    /// Where the flat GDT is written.
    public static let gdtAddress: UInt64 = 0x500
    /// Selectors of the flat GDT.
    public static let code64Selector: UInt16 = 0x08
    public static let dataSelector: UInt16 = 0x10
    public static let code32Selector: UInt16 = 0x18

    /// Writes the flat GDT: null, 64-bit code, data, 32-bit code.
    public static func writeGDT(_ memory: GuestMemory) throws(GuestMemoryError) {
        let entries: [UInt64] = [0, 0x00af_9b00_0000_ffff, 0x00cf_9300_0000_ffff, 0x00cf_9b00_0000_ffff]
        for (i, e) in entries.enumerated() { try memory.store(e, at: gdtAddress + UInt64(i) * 8) }
    }

    static func flatData() -> Segment {
        Segment(base: 0, limit: 0xffff_ffff, selector: dataSelector, type: 3, present: true, db: true, s: true, g: true)
    }

    static func commonSystemSegments(_ s: inout SpecialRegisters) {
        s.gdt = DescriptorTable(base: gdtAddress, limit: 4 * 8 - 1)
        s.idt = DescriptorTable(base: 0, limit: 0)
        s.tr = Segment(base: 0, limit: 0x67, selector: 0, type: 11, present: true, s: false)
        s.ldt = Segment(base: 0, limit: 0xffff, selector: 0, type: 2, present: true, s: false)
    }

    /// 32-bit flat protected mode, paging off, interrupts off — the Multiboot entry state —
    /// at `entry` with EAX/EBX as given. QEMU: the state multiboot.bin leaves.
    public static func enterProtectedMode32(_ vcpu: VCPU, memory: GuestMemory, entry: UInt32, eax: UInt32, ebx: UInt32) throws {
        try writeGDT(memory)
        var s = try vcpu.getSpecialRegisters()
        s.cs = Segment(base: 0, limit: 0xffff_ffff, selector: code32Selector, type: 0xb, present: true, db: true, s: true, g: true)
        s.ds = flatData(); s.es = flatData(); s.fs = flatData(); s.gs = flatData(); s.ss = flatData()
        commonSystemSegments(&s)
        s.cr0 = 0x11            // PE | ET
        s.cr4 = 0
        s.efer = 0
        try vcpu.setSpecialRegisters(s)
        var r = Registers()
        r.rip = UInt64(entry)
        r.rax = UInt64(eax)
        r.rbx = UInt64(ebx)
        r.rflags = 0x2
        try vcpu.setRegisters(r)
    }

    /// Linux's boot protocols want a flat GDT with __BOOT_CS = 0x10 and __BOOT_DS = 0x18.
    public static let linuxCodeSelector: UInt16 = 0x10
    public static let linuxDataSelector: UInt16 = 0x18

    /// The Linux boot protocol's entry state: 64-bit (long mode, identity-mapped low 4 GiB,
    /// RSI = boot_params) or 32-bit (flat protected mode, paging off, ESI = boot_params), with
    /// __BOOT_CS/__BOOT_DS loaded and interrupts off. (Documentation/arch/x86/boot.rst.)
    public static func enterLinux(_ vcpu: VCPU, memory: GuestMemory, entry: UInt64, bootParams: UInt64,
                                  longMode: Bool, pageTables: UInt64 = 0x9000) throws {
        let code: UInt64 = longMode ? 0x00af_9b00_0000_ffff : 0x00cf_9b00_0000_ffff
        for (i, e) in [UInt64(0), 0, code, 0x00cf_9300_0000_ffff].enumerated() {
            try memory.store(e, at: gdtAddress + UInt64(i) * 8)
        }
        var s = try vcpu.getSpecialRegisters()
        s.cs = Segment(base: 0, limit: 0xffff_ffff, selector: linuxCodeSelector, type: 0xb, present: true,
                       db: !longMode, s: true, l: longMode, g: true)
        let data = Segment(base: 0, limit: 0xffff_ffff, selector: linuxDataSelector, type: 3, present: true, db: true, s: true, g: true)
        s.ds = data; s.es = data; s.fs = data; s.gs = data; s.ss = data
        commonSystemSegments(&s)
        if longMode {
            try writeIdentityPageTables(memory, at: pageTables)
            s.cr3 = pageTables
            s.cr4 = 0x20
            s.cr0 = 0x8000_0011
            s.efer = 0x500
        } else {
            s.cr0 = 0x11
            s.cr4 = 0
            s.efer = 0
        }
        try vcpu.setSpecialRegisters(s)
        var r = Registers()
        r.rip = entry
        r.rsi = bootParams
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

    /// 64-bit long mode with identity paging of the low 4 GiB (tables at `pageTables`),
    /// interrupts off, at `entry` with stack `stack`.
    public static func enterLongMode(_ vcpu: VCPU, memory: GuestMemory, pageTables: UInt64 = 0x9000,
                                     entry: UInt64, stack: UInt64) throws {
        try writeGDT(memory)
        try writeIdentityPageTables(memory, at: pageTables)
        var s = try vcpu.getSpecialRegisters()
        s.cs = Segment(base: 0, limit: 0xffff_ffff, selector: code64Selector, type: 0xb, present: true, db: false, s: true, l: true, g: true)
        s.ds = flatData(); s.es = flatData(); s.fs = flatData(); s.gs = flatData(); s.ss = flatData()
        commonSystemSegments(&s)
        s.cr3 = pageTables
        s.cr4 = 0x20            // PAE
        s.cr0 = 0x8000_0011     // PG | ET | PE
        s.efer = 0x500          // LME | LMA
        try vcpu.setSpecialRegisters(s)
        var r = Registers()
        r.rip = entry
        r.rsp = stack
        r.rflags = 0x2
        try vcpu.setRegisters(r)
    }
}
