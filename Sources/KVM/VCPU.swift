internal import CKVM
import SystemPackage
import VMMSys
#if canImport(Glibc)
import Glibc
#endif

/// One virtual CPU (`KVM_CREATE_VCPU`) and its mapped `kvm_run` page.
/// rust-vmm: `kvm_ioctls::VcpuFd`.
///
/// `@unchecked Sendable`: the class has no mutable Swift state, only immutable lets and a
/// pointer to the `kvm_run` mapping, which is shared memory with the kernel. A vCPU is
/// created on one thread and handed to the thread that runs it; the contract is that one
/// thread at a time drives it (`run()`, the `complete…` calls, and the register calls, which
/// the kernel also serializes on `vcpu->mutex`). The one cross-thread use KVM designs for is
/// setting `immediateExit`, a single-byte store the kernel reads at `KVM_RUN` entry; a
/// kicker thread may do that while another thread runs the vCPU.
@safe public final class VCPU: @unchecked Sendable {
    /// The vCPU id (the initial APIC id).
    public let id: UInt32
    /// The vCPU descriptor.
    public let fileDescriptor: FileDescriptor
    /// The VM this vCPU belongs to (kept alive as long as the vCPU).
    public let vm: VirtualMachine

    private let runMapping: MappedMemory
    /// Base of the `kvm_run` mapping; every access below is bounds-checked against `runSize`.
    /// Internal (not private) so tests can plant hostile exit payloads.
    let runBase: UnsafeMutableRawPointer
    let runSize: Int
    /// The VM's coalesced MMIO ring as this vCPU's mapping shows it (every vCPU maps the same
    /// pages), or nil without `KVM_CAP_COALESCED_MMIO`. The run loop checks it after each exit.
    public let coalescedRing: CoalescedMMIORing?

    init(id: UInt32, fileDescriptor: FileDescriptor, run: MappedMemory, vm: VirtualMachine,
         coalescedRing: CoalescedMMIORing? = nil) {
        self.id = id
        self.fileDescriptor = fileDescriptor
        self.vm = vm
        self.coalescedRing = coalescedRing
        runMapping = run
        // SAFETY: `runMapping` keeps the mapping alive as long as this object.
        unsafe runBase = run.base
        runSize = run.length
    }

    deinit { try? fileDescriptor.close() }

    // MARK: Running

    /// `KVM_RUN`: runs the guest until it needs userspace, and decodes why.
    ///
    /// EINTR and EAGAIN are returned as `.interrupted`, not retried: they mean a signal or
    /// `immediateExit` asked this thread to come back. Any other failure throws.
    /// QEMU: the `KVM_RUN` of `kvm_cpu_exec()`.
    public func run() throws(SystemError) -> VCPUExit {
        let r = ckvm_ioctl_none(fileDescriptor.rawValue, CKVM_RUN)
        if r < 0 {
            let code = currentErrno()
            if code == EINTR || code == EAGAIN { return .interrupted }
            throw SystemError(operation: "KVM_RUN", arguments: "vcpu=\(id)", errno: code)
        }
        return decodeExit()
    }

    /// `kvm_run.immediate_exit`: while set, `KVM_RUN` returns EINTR at once (`.interrupted`)
    /// instead of entering the guest — the race-free way to kick a vCPU (set it, then signal
    /// the thread). Clear it before running again.
    public var immediateExit: Bool {
        get { runLoad(CKVM_RUN_IMMEDIATE_EXIT, as: UInt8.self) != 0 }
        set { runStore(UInt8(newValue ? 1 : 0), at: CKVM_RUN_IMMEDIATE_EXIT) }
    }

    /// Supplies the value of the pending single `in` (`.ioIn`): its low `size` bytes.
    ///
    /// All `complete…` calls re-validate the exit still described by `kvm_run` and throw a
    /// `SystemError` with errno EINVAL (operation = the method name) when no matching exit
    /// is pending or the sizes disagree, rather than writing anywhere.
    /// QEMU: the data `kvm_handle_io()` leaves at `io.data_offset` for the next `KVM_RUN`.
    public func completeIoIn(value: UInt64) throws(SystemError) {
        guard let io = pendingIO(direction: KVM_EXIT_IO_IN), io.count == 1 else {
            throw completionError("completeIoIn", "value=\(hex(value)): no pending single port read")
        }
        store(value, at: io.dataOffset, length: io.size)
    }

    /// Supplies the bytes of the pending `in` (`.ioIn` or `.ioInString`): exactly
    /// `size * count` bytes, in guest order. QEMU: `kvm_handle_io()`.
    public func completeIoIn(bytes: [UInt8]) throws(SystemError) {
        guard let io = pendingIO(direction: KVM_EXIT_IO_IN), bytes.count == io.size * io.count else {
            throw completionError("completeIoIn", "bytes=\(bytes.count): no pending port read of that size")
        }
        // SAFETY: pendingIO checked data_offset + size * count (= bytes.count) <= runSize.
        unsafe bytes.withUnsafeBytes { unsafe (runBase + io.dataOffset).copyMemory(from: $0.baseAddress!, byteCount: $0.count) }
    }

    /// Supplies the value of the pending MMIO read (`.mmioRead`): its low `length` bytes.
    /// QEMU: the `KVM_EXIT_MMIO` case of `kvm_cpu_exec()`, reading into `run->mmio.data`.
    public func completeMmioRead(value: UInt64) throws(SystemError) {
        guard let mmio = pendingMMIO(), !mmio.isWrite else {
            throw completionError("completeMmioRead", "value=\(hex(value)): no pending MMIO read")
        }
        store(value, at: CKVM_RUN_MMIO_DATA, length: mmio.length)
    }

    // MARK: Decoding kvm_run

    private var exitReason: UInt32 { runLoad(CKVM_RUN_EXIT_REASON, as: UInt32.self) }

    private struct IOGeometry {
        var direction: UInt8, size: Int, port: UInt16, count: Int, dataOffset: Int
    }

    /// The I/O exit's fields if the exit is port I/O and `data_offset + size * count` lies
    /// inside the mapping; nil otherwise.
    private func ioGeometry() -> IOGeometry? {
        guard exitReason == UInt32(KVM_EXIT_IO) else { return nil }
        let size = Int(runLoad(CKVM_RUN_IO_SIZE, as: UInt8.self))
        let count = UInt64(runLoad(CKVM_RUN_IO_COUNT, as: UInt32.self))
        let offset = runLoad(CKVM_RUN_IO_DATA_OFFSET, as: UInt64.self)
        guard size == 1 || size == 2 || size == 4, count >= 1,
              offset >= UInt64(CKVM_RUN_SIZE), offset <= UInt64(runSize),
              UInt64(size) * count <= UInt64(runSize) - offset
        else { return nil }
        return IOGeometry(
            direction: runLoad(CKVM_RUN_IO_DIRECTION, as: UInt8.self),
            size: size, port: runLoad(CKVM_RUN_IO_PORT, as: UInt16.self),
            count: Int(count), dataOffset: Int(offset))
    }

    private func pendingIO(direction: Int32) -> IOGeometry? {
        guard let io = ioGeometry(), Int32(io.direction) == direction else { return nil }
        return io
    }

    /// The MMIO exit's fields if the exit is MMIO with 1…8 bytes; nil otherwise.
    private func pendingMMIO() -> (address: UInt64, length: Int, isWrite: Bool)? {
        guard exitReason == UInt32(KVM_EXIT_MMIO) else { return nil }
        let length = runLoad(CKVM_RUN_MMIO_LEN, as: UInt32.self)
        guard length >= 1, length <= 8 else { return nil }
        return (runLoad(CKVM_RUN_MMIO_PHYS_ADDR, as: UInt64.self), Int(length),
                runLoad(CKVM_RUN_MMIO_IS_WRITE, as: UInt8.self) != 0)
    }

    /// Decodes the exit `kvm_run` currently describes (internal for tests).
    func decodeExit() -> VCPUExit {
        let reason = exitReason
        switch Int32(bitPattern: reason) {
        case KVM_EXIT_IO:
            guard let io = ioGeometry() else { return .unknown(reason) }
            let port = io.port
            if Int32(io.direction) == KVM_EXIT_IO_OUT {
                if io.count == 1 { return .ioOut(port: port, size: io.size, value: load(at: io.dataOffset, length: io.size)) }
                // SAFETY: ioGeometry checked data_offset + size * count <= runSize.
                let bytes = unsafe Array(UnsafeRawBufferPointer(start: runBase + io.dataOffset, count: io.size * io.count))
                return .ioOutString(port: port, size: io.size, count: io.count, data: bytes)
            }
            if io.count == 1 { return .ioIn(port: port, size: io.size) }
            return .ioInString(port: port, size: io.size, count: io.count)
        case KVM_EXIT_MMIO:
            guard let mmio = pendingMMIO() else { return .unknown(reason) }
            if mmio.isWrite {
                return .mmioWrite(address: mmio.address, length: mmio.length,
                                  value: load(at: CKVM_RUN_MMIO_DATA, length: mmio.length))
            }
            return .mmioRead(address: mmio.address, length: mmio.length)
        case KVM_EXIT_HLT: return .hlt
        case KVM_EXIT_SHUTDOWN: return .shutdown
        case KVM_EXIT_INTERNAL_ERROR:
            return .internalError(suberror: runLoad(CKVM_RUN_INTERNAL_SUBERROR, as: UInt32.self))
        case KVM_EXIT_FAIL_ENTRY:
            return .failEntry(reason: runLoad(CKVM_RUN_FAIL_ENTRY_REASON, as: UInt64.self))
        case KVM_EXIT_SYSTEM_EVENT:
            return .systemEvent(type: runLoad(CKVM_RUN_SYSTEM_EVENT_TYPE, as: UInt32.self))
        case KVM_EXIT_INTR: return .interrupted
        case KVM_EXIT_IRQ_WINDOW_OPEN: return .irqWindowOpen
        case KVM_EXIT_DEBUG: return .debug
        default: return .unknown(reason)
        }
    }

    /// Little-endian load of `length` (≤ 8, already bounds-checked) bytes.
    @inline(__always)
    private func load(at offset: Int, length: Int) -> UInt64 {
        var value: UInt64 = 0
        for i in 0..<length {
            value |= UInt64(runLoad(offset + i, as: UInt8.self)) << (8 * i)
        }
        return value
    }

    /// Little-endian store of the low `length` (≤ 8, already bounds-checked) bytes.
    @inline(__always)
    private func store(_ value: UInt64, at offset: Int, length: Int) {
        for i in 0..<length {
            runStore(UInt8(truncatingIfNeeded: value >> (8 * i)), at: offset + i)
        }
    }

    /// Reads a `T` at `offset` of the `kvm_run` mapping. The offsets are `kvm_run` fields (all
    /// inside `CKVM_RUN_SIZE`, which `KVMSystem` checked against the mapping size) or a
    /// payload offset already checked against `runSize`; the precondition is the last guard.
    @inline(__always)
    private func runLoad<T: FixedWidthInteger>(_ offset: Int, as type: T.Type) -> T {
        precondition(offset >= 0 && offset <= runSize - MemoryLayout<T>.size, "kvm_run offset out of range")
        // SAFETY: in bounds (precondition above); the mapping lives as long as self.
        return unsafe runBase.loadUnaligned(fromByteOffset: offset, as: T.self)
    }

    /// Writes a `T` at `offset` of the `kvm_run` mapping; the offsets are as for `runLoad`.
    @inline(__always)
    private func runStore<T: FixedWidthInteger>(_ value: T, at offset: Int) {
        precondition(offset >= 0 && offset <= runSize - MemoryLayout<T>.size, "kvm_run offset out of range")
        // SAFETY: in bounds (precondition above); the mapping lives as long as self.
        unsafe runBase.storeBytes(of: value, toByteOffset: offset, as: T.self)
    }

    private func completionError(_ operation: String, _ detail: String) -> SystemError {
        SystemError(operation: operation, arguments: "vcpu=\(id) exit_reason=\(exitReason) \(detail)", errno: EINVAL)
    }
}
