internal import CKVM
import SystemPackage
import VMMSys
#if canImport(Glibc)
import Glibc
#endif

/// Register and state accessors: the get/set ioctl pairs, converting to and from the
/// Swift value types so no kernel struct leaks into the public API.
extension VCPU {
    /// `KVM_GET_REGS`. QEMU: `kvm_getput_regs()`.
    public func getRegisters() throws(SystemError) -> Registers {
        var regs = kvm_regs()
        try KVMIoctl.call(fileDescriptor, CKVM_GET_REGS, "KVM_GET_REGS", "vcpu=\(id)", value: &regs)
        return Registers(regs)
    }

    /// `KVM_SET_REGS`. QEMU: `kvm_getput_regs()`.
    public func setRegisters(_ registers: Registers) throws(SystemError) {
        var regs = registers.raw
        try KVMIoctl.call(fileDescriptor, CKVM_SET_REGS, "KVM_SET_REGS",
                          "vcpu=\(id) rip=\(hex(registers.rip))", value: &regs)
    }

    /// `KVM_GET_SREGS`. QEMU: `kvm_get_sregs()`.
    public func getSpecialRegisters() throws(SystemError) -> SpecialRegisters {
        var sregs = kvm_sregs()
        try KVMIoctl.call(fileDescriptor, CKVM_GET_SREGS, "KVM_GET_SREGS", "vcpu=\(id)", value: &sregs)
        return SpecialRegisters(sregs)
    }

    /// `KVM_SET_SREGS`; read them first and change what you need (see ``SpecialRegisters``).
    /// QEMU: `kvm_put_sregs()`.
    public func setSpecialRegisters(_ registers: SpecialRegisters) throws(SystemError) {
        var sregs = registers.raw
        try KVMIoctl.call(fileDescriptor, CKVM_SET_SREGS, "KVM_SET_SREGS",
                          "vcpu=\(id) cr0=\(hex(registers.cr0)) efer=\(hex(registers.efer))", value: &sregs)
    }

    /// `KVM_GET_FPU`. QEMU: `kvm_get_fpu()` (used where the host has no XSAVE).
    public func getFPU() throws(SystemError) -> FPUState {
        var fpu = kvm_fpu()
        try KVMIoctl.call(fileDescriptor, CKVM_GET_FPU, "KVM_GET_FPU", "vcpu=\(id)", value: &fpu)
        return FPUState(fpu)
    }

    /// `KVM_SET_FPU` (e.g. `FPUState()` for the FNINIT control word and reset MXCSR).
    /// QEMU: `kvm_put_fpu()` (used where the host has no XSAVE).
    public func setFPU(_ state: FPUState) throws(SystemError) {
        var fpu = state.raw
        try KVMIoctl.call(fileDescriptor, CKVM_SET_FPU, "KVM_SET_FPU",
                          "vcpu=\(id) fcw=\(hex(state.fcw)) mxcsr=\(hex(state.mxcsr))", value: &fpu)
    }

    /// `KVM_SET_CPUID2`: what the guest's CPUID instruction returns (usually a filtered copy
    /// of `KVMSystem.supportedCPUID()`). Set before the first `run()`.
    /// QEMU: the `KVM_SET_CPUID2` in `kvm_arch_init_vcpu()`.
    public func setCPUID(_ entries: [CPUIDEntry]) throws(SystemError) {
        var buffer = CPUIDBuffer(entries: entries)
        let fd = fileDescriptor
        let vcpu = id
        // SAFETY: the buffer is a kvm_cpuid2 whose nent is its real entry count.
        let result = unsafe buffer.withHeader { header in
            Result { () throws(SystemError) in
                try unsafe KVMIoctl.call(fd, CKVM_SET_CPUID2, "KVM_SET_CPUID2", "vcpu=\(vcpu) nent=\(entries.count)",
                                         pointer: header)
            }
        }
        _ = try result.get()
    }

    /// `KVM_GET_MSRS`: reads the MSRs in `indices`. KVM stops at the first MSR it cannot
    /// read, so the result holds only the leading ones that were read (compare its count).
    /// QEMU: `kvm_get_msrs()`.
    public func getMSRs(_ indices: [UInt32]) throws(SystemError) -> [(index: UInt32, value: UInt64)] {
        var buffer = MSRBuffer(indices.map { ($0, 0) })
        let read = try buffer.call(fileDescriptor, CKVM_GET_MSRS, "KVM_GET_MSRS", vcpu: id)
        return Array(buffer.entries.prefix(read))
    }

    /// `KVM_SET_MSRS`: writes `entries` in order and returns how many were set. KVM stops at
    /// the first MSR it refuses, so a result below `entries.count` names the refused one:
    /// `entries[result]`. QEMU: `kvm_put_msrs()`.
    @discardableResult
    public func setMSRs(_ entries: [(index: UInt32, value: UInt64)]) throws(SystemError) -> Int {
        var buffer = MSRBuffer(entries)
        return try buffer.call(fileDescriptor, CKVM_SET_MSRS, "KVM_SET_MSRS", vcpu: id)
    }

    /// `KVM_GET_MP_STATE`. QEMU: `kvm_get_mp_state()`.
    public func getMPState() throws(SystemError) -> MPState {
        var state = kvm_mp_state()
        try KVMIoctl.call(fileDescriptor, CKVM_GET_MP_STATE, "KVM_GET_MP_STATE", "vcpu=\(id)", value: &state)
        return MPState(rawValue: state.mp_state)
    }

    /// `KVM_SET_MP_STATE` (e.g. `.uninitialized` to hold an AP until INIT/SIPI).
    /// QEMU: `kvm_put_mp_state()`.
    public func setMPState(_ state: MPState) throws(SystemError) {
        var raw = kvm_mp_state(mp_state: state.rawValue)
        try KVMIoctl.call(fileDescriptor, CKVM_SET_MP_STATE, "KVM_SET_MP_STATE",
                          "vcpu=\(id) state=\(state.rawValue)", value: &raw)
    }

    /// Size of the local APIC register page exchanged by `getLAPIC`/`setLAPIC`.
    public static let lapicSize = MemoryLayout<kvm_lapic_state>.size

    /// `KVM_GET_LAPIC`: the in-kernel local APIC's 1024-byte register page.
    /// QEMU: `kvm_get_apic()`.
    public func getLAPIC() throws(SystemError) -> [UInt8] {
        var state = kvm_lapic_state()
        try KVMIoctl.call(fileDescriptor, CKVM_GET_LAPIC, "KVM_GET_LAPIC", "vcpu=\(id)", value: &state)
        // SAFETY: copies the bytes of a local plain-data struct.
        return unsafe withUnsafeBytes(of: &state) { unsafe Array($0) }
    }

    /// `KVM_SET_LAPIC`: `registers` must be exactly `lapicSize` (1024) bytes (EINVAL before
    /// any ioctl otherwise). QEMU: `kvm_apic_put()`.
    public func setLAPIC(_ registers: [UInt8]) throws(SystemError) {
        guard registers.count == VCPU.lapicSize else {
            throw SystemError(operation: "KVM_SET_LAPIC", arguments: "vcpu=\(id) size=\(registers.count)", errno: EINVAL)
        }
        var state = kvm_lapic_state()
        // SAFETY: registers.count == lapicSize == the size of `state` (checked above).
        unsafe withUnsafeMutableBytes(of: &state) { dst in unsafe registers.withUnsafeBytes { unsafe dst.copyMemory(from: $0) } }
        try KVMIoctl.call(fileDescriptor, CKVM_SET_LAPIC, "KVM_SET_LAPIC", "vcpu=\(id)", value: &state)
    }
}

/// A `struct kvm_msrs` header plus its entries, in 8-byte aligned storage.
struct MSRBuffer {
    private var storage: [UInt64]
    let count: Int

    private static let headerSize = MemoryLayout<kvm_msrs>.size
    private static let entrySize = MemoryLayout<kvm_msr_entry>.stride

    init(_ entries: [(index: UInt32, value: UInt64)]) {
        count = entries.count
        storage = [UInt64](repeating: 0, count: (MSRBuffer.headerSize + count * MSRBuffer.entrySize + 7) / 8)
        // SAFETY: the storage was sized for the header and `count` entries just above.
        unsafe storage.withUnsafeMutableBytes { raw in
            unsafe raw.storeBytes(of: UInt32(entries.count), as: UInt32.self)
            for (i, e) in entries.enumerated() {
                var entry = kvm_msr_entry()
                entry.index = e.index
                entry.data = e.value
                unsafe raw.storeBytes(of: entry, toByteOffset: MSRBuffer.headerSize + i * MSRBuffer.entrySize,
                                      as: kvm_msr_entry.self)
            }
        }
    }

    var entries: [(index: UInt32, value: UInt64)] {
        // SAFETY: the storage holds the header and `count` entries (sized in init).
        unsafe storage.withUnsafeBytes { raw in
            (0..<count).map { i in
                let e = unsafe raw.load(fromByteOffset: MSRBuffer.headerSize + i * MSRBuffer.entrySize, as: kvm_msr_entry.self)
                return (e.index, e.data)
            }
        }
    }

    /// Issues `request` on the buffer; returns the number of MSRs processed.
    mutating func call(_ fd: FileDescriptor, _ request: UInt, _ name: String, vcpu: UInt32) throws(SystemError) -> Int {
        let n = count
        let first = entries.first.map { " first=\(hex($0.index))" } ?? ""
        // SAFETY: the storage is a kvm_msrs whose nmsrs is its real entry count.
        let result = unsafe storage.withUnsafeMutableBytes { raw in
            Result { () throws(SystemError) in
                try unsafe KVMIoctl.call(fd, request, name, "vcpu=\(vcpu) nmsrs=\(n)\(first)", pointer: raw.baseAddress!)
            }
        }
        return Int(try result.get())
    }
}
