internal import CKVM
import VMMSys

/// One in-kernel 8259's state (`struct kvm_pic_state`). QEMU: PICCommonState via kvm-i8259.
///
/// Each field is the `kvm_pic_state` field of the same meaning, named in the comment.
public struct PICState: Sendable, Equatable {
    /// Line levels last seen, for edge detection (`last_irr`).
    public var lastIRR: UInt8 = 0
    /// Interrupt request register (`irr`).
    public var irr: UInt8 = 0
    /// Interrupt mask register (`imr`).
    public var imr: UInt8 = 0
    /// In-service register (`isr`).
    public var isr: UInt8 = 0
    /// The IRQ with the highest priority, which rotation moves (`priority_add`).
    public var priorityAdd: UInt8 = 0
    /// The vector of IRQ 0, from ICW2 (`irq_base`).
    public var irqBase: UInt8 = 0
    /// Which of IRR and ISR an OCW3 read returns (`read_reg_select`).
    public var readRegisterSelect: UInt8 = 0
    /// Poll mode armed by OCW3 (`poll`).
    public var poll: UInt8 = 0
    /// Special mask mode (`special_mask`).
    public var specialMask: UInt8 = 0
    /// Which initialization word the PIC expects next, 0 when initialized (`init_state`).
    public var initState: UInt8 = 0
    /// Automatic end of interrupt, from ICW4 (`auto_eoi`).
    public var autoEOI: UInt8 = 0
    /// Rotate priorities on automatic EOI (`rotate_on_auto_eoi`).
    public var rotateOnAutoEOI: UInt8 = 0
    /// Special fully nested mode, from ICW4 (`special_fully_nested_mode`).
    public var specialFullyNestedMode: UInt8 = 0
    /// ICW4 expected during initialization (`init4`).
    public var init4: UInt8 = 0
    /// The edge/level control register (PIIX ELCR), and which of its bits exist
    /// (`elcr`, `elcr_mask`).
    public var elcr: UInt8 = 0, elcrMask: UInt8 = 0

    /// All zero; read the real state with ``VirtualMachine/getPIC(_:)``.
    public init() {}
}

/// The in-kernel IOAPIC's state (`struct kvm_ioapic_state`). QEMU: IOAPICCommonState.
public struct IOAPICState: Sendable, Equatable {
    /// Guest-physical address of the register window (`base_address`).
    public var baseAddress: UInt64 = 0xfec0_0000
    /// The register IOREGSEL selects for the next IOWIN access (`ioregsel`).
    public var registerSelect: UInt32 = 0
    /// The IOAPIC's id (`id`).
    public var id: UInt32 = 0
    /// Pins with a pending request (`irr`).
    public var irr: UInt32 = 0
    /// The 24 redirection entries, each as its 64-bit register (`redirtbl[i].bits`).
    public var redirectionTable = [UInt64](repeating: 0, count: 24)

    /// Zero but the default base address; read the real state with ``VirtualMachine/getIOAPIC()``.
    public init() {}
}

extension VirtualMachine {
    private static let pic0: UInt32 = 0, pic1: UInt32 = 1, ioapic: UInt32 = 2
    /// Where redirtbl starts in kvm_ioapic_state (u64 base, u32 ioregsel, id, irr, pad).
    private static let redirectionTableOffset = 24

    /// `KVM_GET_IRQCHIP` for the master (0) or slave (1) PIC.
    /// QEMU: `kvm_pic_get()` (hw/i386/kvm/i8259.c).
    public func getPIC(_ chip: UInt32) throws(SystemError) -> PICState {
        var c = kvm_irqchip()
        c.chip_id = chip
        try KVMIoctl.call(fileDescriptor, CKVM_GET_IRQCHIP, "KVM_GET_IRQCHIP", "chip=\(chip)", value: &c)
        // SAFETY (the `chip` union reads and writes in this extension): `chip_id` says which
        // member the kernel reads or fills, and each function uses only that member of its
        // zero-initialized local `kvm_irqchip`.
        let p = unsafe c.chip.pic
        var s = PICState()
        (s.lastIRR, s.irr, s.imr, s.isr) = (p.last_irr, p.irr, p.imr, p.isr)
        (s.priorityAdd, s.irqBase, s.readRegisterSelect, s.poll) = (p.priority_add, p.irq_base, p.read_reg_select, p.poll)
        (s.specialMask, s.initState, s.autoEOI, s.rotateOnAutoEOI) = (p.special_mask, p.init_state, p.auto_eoi, p.rotate_on_auto_eoi)
        (s.specialFullyNestedMode, s.init4, s.elcr, s.elcrMask) = (p.special_fully_nested_mode, p.init4, p.elcr, p.elcr_mask)
        return s
    }

    /// `KVM_SET_IRQCHIP` for the master (0) or slave (1) PIC.
    /// QEMU: `kvm_pic_put()` (hw/i386/kvm/i8259.c).
    public func setPIC(_ chip: UInt32, _ s: PICState) throws(SystemError) {
        var c = kvm_irqchip()
        c.chip_id = chip
        unsafe c.chip.pic.last_irr = s.lastIRR
        unsafe c.chip.pic.irr = s.irr
        unsafe c.chip.pic.imr = s.imr
        unsafe c.chip.pic.isr = s.isr
        unsafe c.chip.pic.priority_add = s.priorityAdd
        unsafe c.chip.pic.irq_base = s.irqBase
        unsafe c.chip.pic.read_reg_select = s.readRegisterSelect
        unsafe c.chip.pic.poll = s.poll
        unsafe c.chip.pic.special_mask = s.specialMask
        unsafe c.chip.pic.init_state = s.initState
        unsafe c.chip.pic.auto_eoi = s.autoEOI
        unsafe c.chip.pic.rotate_on_auto_eoi = s.rotateOnAutoEOI
        unsafe c.chip.pic.special_fully_nested_mode = s.specialFullyNestedMode
        unsafe c.chip.pic.init4 = s.init4
        unsafe c.chip.pic.elcr = s.elcr
        unsafe c.chip.pic.elcr_mask = s.elcrMask
        try KVMIoctl.call(fileDescriptor, CKVM_SET_IRQCHIP, "KVM_SET_IRQCHIP", "chip=\(chip)", value: &c)
    }

    /// `KVM_GET_IRQCHIP` for the IOAPIC. QEMU: `kvm_ioapic_get()` (hw/i386/kvm/ioapic.c).
    public func getIOAPIC() throws(SystemError) -> IOAPICState {
        var c = kvm_irqchip()
        c.chip_id = Self.ioapic
        try KVMIoctl.call(fileDescriptor, CKVM_GET_IRQCHIP, "KVM_GET_IRQCHIP", "chip=2", value: &c)
        var s = IOAPICState()
        unsafe s.baseAddress = c.chip.ioapic.base_address
        unsafe s.registerSelect = c.chip.ioapic.ioregsel
        unsafe s.id = c.chip.ioapic.id
        unsafe s.irr = c.chip.ioapic.irr
        // SAFETY: redirtbl (24 8-byte unions Swift does not import) starts at byte 24 of
        // kvm_ioapic_state, which is 24 + 192 bytes; the reads stay inside the local struct.
        s.redirectionTable = unsafe withUnsafeBytes(of: &c.chip.ioapic) { raw in
            (0..<24).map { unsafe raw.loadUnaligned(fromByteOffset: Self.redirectionTableOffset + 8 * $0, as: UInt64.self) }
        }
        return s
    }

    /// `KVM_SET_IRQCHIP` for the IOAPIC. QEMU: `kvm_ioapic_put()` (hw/i386/kvm/ioapic.c).
    public func setIOAPIC(_ s: IOAPICState) throws(SystemError) {
        var c = kvm_irqchip()
        c.chip_id = Self.ioapic
        unsafe c.chip.ioapic.base_address = s.baseAddress
        unsafe c.chip.ioapic.ioregsel = s.registerSelect
        unsafe c.chip.ioapic.id = s.id
        unsafe c.chip.ioapic.irr = s.irr
        // SAFETY: as in getIOAPIC: 24 8-byte stores inside the local struct's table.
        unsafe withUnsafeMutableBytes(of: &c.chip.ioapic) { raw in
            for (i, v) in s.redirectionTable.prefix(24).enumerated() {
                unsafe raw.storeBytes(of: v, toByteOffset: Self.redirectionTableOffset + 8 * i, as: UInt64.self)
            }
        }
        try KVMIoctl.call(fileDescriptor, CKVM_SET_IRQCHIP, "KVM_SET_IRQCHIP", "chip=2", value: &c)
    }
}

extension VCPU {
    /// Drops any pending exception, interrupt, NMI or SIPI the vCPU holds (a reset line does).
    /// QEMU: x86_cpu_reset() clearing env->exception_*, interrupt_injected, nmi_* before
    /// kvm_put_vcpu_events().
    public func clearPendingEvents() throws(SystemError) {
        var e = kvm_vcpu_events()
        try KVMIoctl.call(fileDescriptor, CKVM_GET_VCPU_EVENTS, "KVM_GET_VCPU_EVENTS", "vcpu=\(id)", value: &e)
        e.exception.injected = 0
        e.exception.nr = 0
        e.exception.has_error_code = 0
        e.exception.error_code = 0
        e.interrupt.injected = 0
        e.interrupt.nr = 0
        e.interrupt.soft = 0
        e.nmi.injected = 0
        e.nmi.pending = 0
        e.nmi.masked = 0
        e.sipi_vector = 0
        e.flags = 0
        try KVMIoctl.call(fileDescriptor, CKVM_SET_VCPU_EVENTS, "KVM_SET_VCPU_EVENTS", "vcpu=\(id)", value: &e)
    }
}
