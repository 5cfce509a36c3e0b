internal import CKVM

/// The general-purpose registers (`struct kvm_regs`).
///
/// Each field is the `kvm_regs` field of the same name. QEMU: `kvm_getput_regs()`.
public struct Registers: Sendable, Hashable {
    /// The accumulator and the other legacy general-purpose registers (`kvm_regs.rax`, …).
    public var rax: UInt64 = 0, rbx: UInt64 = 0, rcx: UInt64 = 0, rdx: UInt64 = 0
    /// Source and destination index, stack and frame pointer (`kvm_regs.rsi`, …, `.rbp`).
    public var rsi: UInt64 = 0, rdi: UInt64 = 0, rsp: UInt64 = 0, rbp: UInt64 = 0
    /// The 64-bit registers R8–R11 (`kvm_regs.r8`, …).
    public var r8: UInt64 = 0, r9: UInt64 = 0, r10: UInt64 = 0, r11: UInt64 = 0
    /// The 64-bit registers R12–R15 (`kvm_regs.r12`, …).
    public var r12: UInt64 = 0, r13: UInt64 = 0, r14: UInt64 = 0, r15: UInt64 = 0
    /// The instruction pointer: an offset in CS, so the linear address is `cs.base + rip`
    /// outside long mode (`kvm_regs.rip`).
    public var rip: UInt64 = 0
    /// Bit 1 is reserved and must be set (0x2 is the reset value) (`kvm_regs.rflags`).
    public var rflags: UInt64 = 0x2

    /// All zero but `rflags` (0x2, its reset value).
    public init() {}

    init(_ r: kvm_regs) {
        rax = r.rax; rbx = r.rbx; rcx = r.rcx; rdx = r.rdx
        rsi = r.rsi; rdi = r.rdi; rsp = r.rsp; rbp = r.rbp
        r8 = r.r8; r9 = r.r9; r10 = r.r10; r11 = r.r11
        r12 = r.r12; r13 = r.r13; r14 = r.r14; r15 = r.r15
        rip = r.rip; rflags = r.rflags
    }

    var raw: kvm_regs {
        kvm_regs(rax: rax, rbx: rbx, rcx: rcx, rdx: rdx, rsi: rsi, rdi: rdi, rsp: rsp, rbp: rbp,
                 r8: r8, r9: r9, r10: r10, r11: r11, r12: r12, r13: r13, r14: r14, r15: r15,
                 rip: rip, rflags: rflags)
    }
}

/// A segment register's hidden state (`struct kvm_segment`): what the CPU cached from the
/// descriptor, which is what matters in protected and long mode.
public struct Segment: Sendable, Hashable {
    /// Linear address of byte 0 of the segment (`kvm_segment.base`).
    public var base: UInt64 = 0
    /// Last valid offset, in bytes whatever `g` says: KVM expands it (`kvm_segment.limit`).
    public var limit: UInt32 = 0xffff
    /// The selector loaded, index and RPL (`kvm_segment.selector`).
    public var selector: UInt16 = 0
    /// Descriptor type (e.g. 0xb execute/read accessed code, 0x3 read/write accessed data)
    /// (`kvm_segment.type`).
    public var type: UInt8 = 0
    /// Descriptor present (`kvm_segment.present`).
    public var present: Bool = true
    /// Descriptor privilege level, 0–3 (`kvm_segment.dpl`).
    public var dpl: UInt8 = 0
    /// Default operation size (32-bit code/stack when set) (`kvm_segment.db`).
    public var db: Bool = false
    /// Code/data (true) versus system (false) descriptor (`kvm_segment.s`).
    public var s: Bool = true
    /// 64-bit code segment (`kvm_segment.l`).
    public var l: Bool = false
    /// Granularity: limit in 4 KiB units (`kvm_segment.g`).
    public var g: Bool = false
    /// The descriptor bit left to software (`kvm_segment.avl`).
    public var avl: Bool = false
    /// A null or otherwise unusable segment, as VMX tracks it (`kvm_segment.unusable`).
    public var unusable: Bool = false

    /// A segment with the given fields. The defaults give a present 64 KiB segment at 0 of
    /// type 0; set at least `type` and `selector` for a segment a guest can use.
    public init(base: UInt64 = 0, limit: UInt32 = 0xffff, selector: UInt16 = 0, type: UInt8 = 0,
                present: Bool = true, dpl: UInt8 = 0, db: Bool = false, s: Bool = true, l: Bool = false,
                g: Bool = false, avl: Bool = false, unusable: Bool = false) {
        self.base = base; self.limit = limit; self.selector = selector; self.type = type
        self.present = present; self.dpl = dpl; self.db = db; self.s = s; self.l = l
        self.g = g; self.avl = avl; self.unusable = unusable
    }

    init(_ k: kvm_segment) {
        self.init(base: k.base, limit: k.limit, selector: k.selector, type: k.type, present: k.present != 0,
                  dpl: k.dpl, db: k.db != 0, s: k.s != 0, l: k.l != 0, g: k.g != 0, avl: k.avl != 0,
                  unusable: k.unusable != 0)
    }

    var raw: kvm_segment {
        kvm_segment(base: base, limit: limit, selector: selector, type: type, present: present ? 1 : 0,
                    dpl: dpl, db: db ? 1 : 0, s: s ? 1 : 0, l: l ? 1 : 0, g: g ? 1 : 0, avl: avl ? 1 : 0,
                    unusable: unusable ? 1 : 0, padding: 0)
    }
}

/// A descriptor-table register (GDTR/IDTR, `struct kvm_dtable`).
public struct DescriptorTable: Sendable, Hashable {
    /// Linear address of the table (`kvm_dtable.base`).
    public var base: UInt64
    /// Size of the table minus one, in bytes (`kvm_dtable.limit`).
    public var limit: UInt16

    /// A table register with the given fields (by default the reset state: 0 and 0xffff).
    public init(base: UInt64 = 0, limit: UInt16 = 0xffff) {
        self.base = base
        self.limit = limit
    }
}

/// Segment, descriptor-table and control registers (`struct kvm_sregs`).
///
/// Each field is the `kvm_sregs` field of the same name (`apicBase`: `apic_base`,
/// `interruptBitmap`: `interrupt_bitmap`). QEMU: `kvm_get_sregs()`, `kvm_put_sregs()`.
public struct SpecialRegisters: Sendable, Hashable {
    /// The code and data segment registers (`kvm_sregs.cs`, `.ds`, `.es`, `.fs`).
    public var cs = Segment(), ds = Segment(), es = Segment(), fs = Segment()
    /// GS, the stack segment, the task register and the LDT register (`kvm_sregs.gs`, `.ss`,
    /// `.tr`, `.ldt`).
    public var gs = Segment(), ss = Segment(), tr = Segment(), ldt = Segment()
    /// GDTR and IDTR (`kvm_sregs.gdt`, `.idt`).
    public var gdt = DescriptorTable(), idt = DescriptorTable()
    /// The control registers (`kvm_sregs.cr0`, …, `.cr8`): CR0 holds PE and PG, CR3 the page
    /// table root, CR4 PAE, CR8 the task priority.
    public var cr0: UInt64 = 0, cr2: UInt64 = 0, cr3: UInt64 = 0, cr4: UInt64 = 0, cr8: UInt64 = 0
    /// The EFER MSR: LME/LMA for long mode (`kvm_sregs.efer`).
    public var efer: UInt64 = 0
    /// The IA32_APIC_BASE MSR: the local APIC's address and enable bits (`kvm_sregs.apic_base`).
    public var apicBase: UInt64 = 0
    /// `interrupt_bitmap`: an interrupt KVM had accepted but not yet delivered (at most one
    /// bit). Kept so that get → modify → set does not drop it; normally all zero.
    public var interruptBitmap: [UInt64] = [0, 0, 0, 0]

    /// Default values (segments as `Segment()`, control registers 0), not a vCPU's reset
    /// state: start from ``VCPU/getSpecialRegisters()`` and change what you need.
    public init() {}

    init(_ k: kvm_sregs) {
        cs = Segment(k.cs); ds = Segment(k.ds); es = Segment(k.es); fs = Segment(k.fs)
        gs = Segment(k.gs); ss = Segment(k.ss); tr = Segment(k.tr); ldt = Segment(k.ldt)
        gdt = DescriptorTable(base: k.gdt.base, limit: k.gdt.limit)
        idt = DescriptorTable(base: k.idt.base, limit: k.idt.limit)
        cr0 = k.cr0; cr2 = k.cr2; cr3 = k.cr3; cr4 = k.cr4; cr8 = k.cr8
        efer = k.efer; apicBase = k.apic_base
        let b = k.interrupt_bitmap
        interruptBitmap = [b.0, b.1, b.2, b.3]
    }

    var raw: kvm_sregs {
        var k = kvm_sregs()
        k.cs = cs.raw; k.ds = ds.raw; k.es = es.raw; k.fs = fs.raw
        k.gs = gs.raw; k.ss = ss.raw; k.tr = tr.raw; k.ldt = ldt.raw
        k.gdt.base = gdt.base; k.gdt.limit = gdt.limit
        k.idt.base = idt.base; k.idt.limit = idt.limit
        k.cr0 = cr0; k.cr2 = cr2; k.cr3 = cr3; k.cr4 = cr4; k.cr8 = cr8
        k.efer = efer; k.apic_base = apicBase
        let b = interruptBitmap + [0, 0, 0, 0]
        k.interrupt_bitmap = (b[0], b[1], b[2], b[3])
        return k
    }
}

/// x87/SSE state (`struct kvm_fpu`).
public struct FPUState: Sendable, Hashable {
    /// x87 control word; 0x37f is the FNINIT value (`kvm_fpu.fcw`).
    public var fcw: UInt16 = 0x37f
    /// x87 status word (`kvm_fpu.fsw`).
    public var fsw: UInt16 = 0
    /// Abridged tag word (one bit per register, as FXSAVE stores it) (`kvm_fpu.ftwx`).
    public var ftwx: UInt8 = 0
    /// Opcode of the last x87 instruction (`kvm_fpu.last_opcode`).
    public var lastOpcode: UInt16 = 0
    /// Address of the last x87 instruction (`kvm_fpu.last_ip`).
    public var lastIP: UInt64 = 0
    /// Address of the last x87 memory operand (`kvm_fpu.last_dp`).
    public var lastDP: UInt64 = 0
    /// SSE control/status; 0x1f80 is the reset value (`kvm_fpu.mxcsr`).
    public var mxcsr: UInt32 = 0x1f80
    /// ST0–ST7, 16 bytes each (128 bytes) (`kvm_fpu.fpr`).
    public var fpr: [UInt8] = Array(repeating: 0, count: 128)
    /// XMM0–XMM15, 16 bytes each (256 bytes) (`kvm_fpu.xmm`).
    public var xmm: [UInt8] = Array(repeating: 0, count: 256)

    /// The state after FNINIT with MXCSR at its reset value.
    public init() {}

    init(_ k: kvm_fpu) {
        fcw = k.fcw; fsw = k.fsw; ftwx = k.ftwx; lastOpcode = k.last_opcode
        lastIP = k.last_ip; lastDP = k.last_dp; mxcsr = k.mxcsr
        var copy = k
        // SAFETY: copies the bytes of two fixed-size byte tuples of a local struct.
        fpr = unsafe withUnsafeBytes(of: &copy.fpr) { unsafe Array($0) }
        xmm = unsafe withUnsafeBytes(of: &copy.xmm) { unsafe Array($0) }
    }

    var raw: kvm_fpu {
        var k = kvm_fpu()
        k.fcw = fcw; k.fsw = fsw; k.ftwx = ftwx; k.last_opcode = lastOpcode
        k.last_ip = lastIP; k.last_dp = lastDP; k.mxcsr = mxcsr
        // SAFETY: copies at most the tuple's size (prefix(dst.count)) into a local struct's tuple.
        unsafe withUnsafeMutableBytes(of: &k.fpr) { dst in
            unsafe fpr.withUnsafeBytes { unsafe dst.copyMemory(from: UnsafeRawBufferPointer(rebasing: $0.prefix(dst.count))) }
        }
        unsafe withUnsafeMutableBytes(of: &k.xmm) { dst in
            unsafe xmm.withUnsafeBytes { unsafe dst.copyMemory(from: UnsafeRawBufferPointer(rebasing: $0.prefix(dst.count))) }
        }
        return k
    }
}

/// A vCPU's multiprocessing state (`struct kvm_mp_state`).
/// A struct rather than an enum: the kernel may report states this module does not name.
public struct MPState: RawRepresentable, Sendable, Hashable {
    /// The `KVM_MP_STATE_*` value (`kvm_mp_state.mp_state`).
    public var rawValue: UInt32
    /// Wraps a `KVM_MP_STATE_*` value, named here or not.
    public init(rawValue: UInt32) { self.rawValue = rawValue }

    /// Running (or ready to run): the state of the boot processor. `KVM_MP_STATE_RUNNABLE`.
    public static let runnable = MPState(rawValue: UInt32(KVM_MP_STATE_RUNNABLE))
    /// An application processor waiting for INIT (with the in-kernel local APIC).
    /// `KVM_MP_STATE_UNINITIALIZED`.
    public static let uninitialized = MPState(rawValue: UInt32(KVM_MP_STATE_UNINITIALIZED))
    /// INIT received, waiting for a SIPI. `KVM_MP_STATE_INIT_RECEIVED`.
    public static let initReceived = MPState(rawValue: UInt32(KVM_MP_STATE_INIT_RECEIVED))
    /// Halted in the kernel, waiting for an interrupt. `KVM_MP_STATE_HALTED`.
    public static let halted = MPState(rawValue: UInt32(KVM_MP_STATE_HALTED))
    /// SIPI received: the vCPU starts at the vector's address. `KVM_MP_STATE_SIPI_RECEIVED`.
    public static let sipiReceived = MPState(rawValue: UInt32(KVM_MP_STATE_SIPI_RECEIVED))
}
