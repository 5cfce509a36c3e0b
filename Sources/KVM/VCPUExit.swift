/// Why `KVM_RUN` returned, with the payload copied out of `kvm_run` so it stays valid after
/// the next run. rust-vmm: `kvm_ioctls::VcpuExit` (which borrows instead of copying).
///
/// The hot exits (single port I/O of 1/2/4 bytes, MMIO of up to 8 bytes) carry their data
/// as a little-endian `UInt64` so decoding them allocates nothing; only string I/O
/// (`rep outs`/`rep ins`) carries an array.
public enum VCPUExit: Sendable, Hashable {
    /// `out` of `size` bytes (1, 2, 4) to `port`; `value` holds them zero-extended.
    /// `KVM_EXIT_IO`, `KVM_EXIT_IO_OUT`, count 1.
    case ioOut(port: UInt16, size: Int, value: UInt64)
    /// `in` of `size` bytes from `port`; answer with `VCPU.completeIoIn(value:)` before the
    /// next `run()` (otherwise the guest reads whatever the data area held).
    /// `KVM_EXIT_IO`, `KVM_EXIT_IO_IN`, count 1.
    case ioIn(port: UInt16, size: Int)
    /// String `outs` of `count` items of `size` bytes: `data` has `size * count` bytes, in
    /// guest order. `KVM_EXIT_IO`, `KVM_EXIT_IO_OUT`, count > 1.
    case ioOutString(port: UInt16, size: Int, count: Int, data: [UInt8])
    /// String `ins` of `count` items of `size` bytes; answer with
    /// `VCPU.completeIoIn(bytes:)` carrying exactly `size * count` bytes.
    /// `KVM_EXIT_IO`, `KVM_EXIT_IO_IN`, count > 1.
    case ioInString(port: UInt16, size: Int, count: Int)
    /// A guest write of `length` (1…8) bytes to an address backed by no memory slot (or a
    /// read-only one); `value` holds the bytes little-endian. `KVM_EXIT_MMIO`, `is_write` set.
    case mmioWrite(address: UInt64, length: Int, value: UInt64)
    /// A guest read of `length` (1…8) bytes from unbacked space; answer with
    /// `VCPU.completeMmioRead(value:)` before the next `run()`. `KVM_EXIT_MMIO`, `is_write` 0.
    case mmioRead(address: UInt64, length: Int)
    /// `hlt` with no in-kernel irqchip to wait on the vCPU's behalf. `KVM_EXIT_HLT`.
    case hlt
    /// Triple fault (or similar): the guest must be reset. `KVM_EXIT_SHUTDOWN`.
    case shutdown
    /// KVM could not emulate something; `suberror` is a `KVM_INTERNAL_ERROR_*` code.
    /// `KVM_EXIT_INTERNAL_ERROR`.
    case internalError(suberror: UInt32)
    /// VM entry failed; `reason` is the hardware entry-failure reason
    /// (`fail_entry.hardware_entry_failure_reason`). `KVM_EXIT_FAIL_ENTRY`.
    case failEntry(reason: UInt64)
    /// A platform event (`KVM_SYSTEM_EVENT_SHUTDOWN` = 1, `_RESET` = 2, `_CRASH` = 3, …).
    /// `KVM_EXIT_SYSTEM_EVENT`.
    case systemEvent(type: UInt32)
    /// `KVM_RUN` returned EINTR/EAGAIN (a signal, or `immediateExit` was set), or exited with
    /// `KVM_EXIT_INTR`. A result to act on, never retried here.
    case interrupted
    /// The guest can take an interrupt now (after `request_interrupt_window`).
    /// `KVM_EXIT_IRQ_WINDOW_OPEN`.
    case irqWindowOpen
    /// A debug exit (breakpoint/single-step with guest debugging enabled). `KVM_EXIT_DEBUG`.
    case debug
    /// An exit reason this module does not decode, or an I/O / MMIO exit whose geometry
    /// from `kvm_run` was out of range (so it was not read). Carries the exit reason.
    case unknown(UInt32)
}
