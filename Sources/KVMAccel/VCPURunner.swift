import Dispatch
import KVM
import Logging
import Memory
import Synchronization
import VMMSys
#if canImport(Glibc)
import Glibc
#endif

/// Why a vCPU stopped running.
public enum VCPUStopReason: Sendable, Equatable, CustomStringConvertible {
    /// HLT with no in-kernel irqchip to wait in.
    case halted
    /// Triple fault or `KVM_SYSTEM_EVENT_SHUTDOWN`.
    case shutdown
    /// `KVM_SYSTEM_EVENT_RESET` (the guest asked for a reboot).
    case reset
    /// `stop()` was called (or a device asked the machine to exit).
    case stopped
    /// KVM could not run or emulate the guest; carries a register dump.
    case failed(String)

    /// The reason as a word ("halted"), or a failure's message.
    public var description: String {
        switch self {
        case .halted: return "halted"
        case .shutdown: return "shutdown"
        case .reset: return "reset"
        case .stopped: return "stopped"
        case .failed(let why): return why
        }
    }
}

/// Userspace exits of one vCPU, by kind.
public final class ExitCounters: Sendable {
    let portIOCount = Atomic<UInt64>(0)
    let mmioCount = Atomic<UInt64>(0)
    let otherCount = Atomic<UInt64>(0)
    init() {}
    /// Exits for port I/O (each string I/O exit counts once).
    public var portIO: UInt64 { portIOCount.load(ordering: .relaxed) }
    /// Exits for MMIO.
    public var mmio: UInt64 { mmioCount.load(ordering: .relaxed) }
    /// Every other exit (HLT, interrupted, IRQ window, …).
    public var other: UInt64 { otherCount.load(ordering: .relaxed) }
    /// Every userspace exit counted here.
    public var total: UInt64 { portIO + mmio + other }
}

/// One vCPU's run loop: `KVM_RUN`, then dispatch the exit into the I/O or memory address
/// space and write results back before the next run. QEMU: `kvm_cpu_exec()`.
///
/// Before an exit is handled, the writes the kernel coalesced (buffered in the ring instead of
/// exiting) are replayed in order, so every device sees the guest's writes in program order;
/// the ring is also drained when the vCPU stops or parks. A VM the accelerator found unable
/// to run as built (guest RAM the kernel refused to map: ``KVMAccelerator/memoryErrors``) is
/// not entered: the run ends with `.failed` and that reason.
public final class VCPURunner: Sendable {
    /// The vCPU this loop runs.
    public let vcpu: VCPU
    /// Where MMIO exits are dispatched (and coalesced MMIO writes replayed).
    public let memory: AddressSpace
    /// Where port I/O exits are dispatched.
    public let io: AddressSpace
    /// This vCPU's userspace exits, by kind.
    public let counters = ExitCounters()
    private let logger: Logger
    private let stopRequested = Atomic<Bool>(false)
    private let thread = Mutex<pthread_t?>(nil)
    /// Pausing: requested by `pause()`, acknowledged by the run loop, which then waits for
    /// `resumeSignal` outside KVM_RUN. QEMU: cpu->stop / cpu->stopped, qemu_wait_io_event().
    private let parking = Mutex<(requested: Bool, parked: Bool, inRun: Bool, threadID: Int32?)>((false, false, false, nil))
    private let resumeSignal = DispatchSemaphore(value: 0)

    /// A loop for `vcpu` dispatching into `memory` and `io`; installs the no-op kick signal
    /// handler once per process. Nothing runs until ``run()`` or ``start(name:completion:)``.
    public init(vcpu: VCPU, memory: AddressSpace, io: AddressSpace, logger: Logger = Logger(label: "vmm.vcpu")) {
        self.vcpu = vcpu
        self.memory = memory
        self.io = io
        self.logger = logger
        VCPUKick.installHandler()
    }

    /// Runs the vCPU on the calling thread until it stops. QEMU: `kvm_cpu_exec()`, looped by
    /// `kvm_vcpu_thread_fn()`.
    public func run() -> VCPUStopReason {
        thread.withLock { $0 = VCPUKick.currentThread() }
        let tid = HostThread.currentID
        parking.withLock { $0.inRun = true; $0.threadID = tid }
        defer {
            drainCoalesced()
            thread.withLock { $0 = nil }
            parking.withLock { $0.inRun = false }
        }
        // Whether the last exit's instruction is still unfinished in the kernel: a port or MMIO
        // access is completed (the value read loaded, RIP advanced) only by the next KVM_RUN.
        var instructionPending = false
        while true {
            if stopRequested.load(ordering: .acquiring) { return .stopped }
            if let why = vcpu.vm.failure { return .failed(why) }
            // A pause waits for that KVM_RUN: `pause()` set immediate_exit, so the kernel
            // finishes the instruction and returns EINTR without running the guest further
            // (api.rst, "immediate_exit"). Parked, the vCPU's state is then whole, and registers
            // set meanwhile (a reset entering the kernel again) are the ones it resumes with;
            // otherwise the pending completion would run at resume on top of them.
            let park = !instructionPending && parking.withLock { p -> Bool in
                guard p.requested else { return false }
                p.parked = true
                return true
            }
            if park {
                drainCoalesced()
                // Parked outside KVM_RUN with every exit handled and its instruction complete:
                // nothing is lost or replayed.
                resumeSignal.wait()
                parking.withLock { $0.parked = false }
                vcpu.immediateExit = false
                continue
            }
            let exit: VCPUExit
            do { exit = try vcpu.run() } catch { return .failed("\(error)") }
            instructionPending = exit.completesOnNextRun
            drainCoalesced()
            if let reason = handle(exit) { return reason }
        }
    }

    /// Replays the coalesced ring if the kernel buffered anything (two loads when it did not).
    /// Through the memory system's drain, which the accelerator installed; the ring is the
    /// VM's, so this also replays other vCPUs' writes, in the order the kernel took them.
    /// QEMU: `kvm_flush_coalesced_mmio_buffer()`.
    @inline(__always)
    private func drainCoalesced() {
        if let ring = vcpu.coalescedRing, !ring.isEmpty { memory.system.flushCoalescedMMIO() }
    }

    /// Runs the vCPU on a new thread (1 MiB of stack); `completion` gets the reason it stopped,
    /// on that thread, or `.failed` on the calling thread if the host refused a thread.
    /// QEMU: `kvm_start_vcpu_thread()`.
    public func start(name: String? = nil, completion: @escaping @Sendable (VCPUStopReason) -> Void) {
        do {
            try HostThread.start(name: name ?? "vcpu\(vcpu.id)", stackSize: 1 << 20) { [self] in completion(run()) }
        } catch {
            completion(.failed("vCPU \(vcpu.id): \(error)"))
        }
    }

    /// Asks the vCPU to stop, from any thread; it returns `.stopped` from `run()` promptly
    /// (a parked vCPU too): `immediate_exit` set, then a signal to its thread.
    /// QEMU: `qemu_cpu_kick()` (SIG_IPI to the vCPU thread, `kvm_cpu_kick()` setting
    /// `immediate_exit`).
    public func stop() {
        stopRequested.store(true, ordering: .releasing)
        vcpu.immediateExit = true
        if let t = thread.withLock({ $0 }) { VCPUKick.kick(t) }
        if parking.withLock({ $0.parked }) { resumeSignal.signal() }
    }

    /// Asks the vCPU to park outside KVM_RUN (kicking it out of the guest), from any thread;
    /// one that has not started parks as soon as it does (`-S`). `isParked` tells when it has:
    /// from then on its registers are whole (an instruction that exited to userspace has been
    /// completed by one more KVM_RUN with immediate_exit) and may be read or replaced.
    /// QEMU: pause_all_vcpus() → qemu_cpu_kick(); `kvm_cpu_exec()` likewise returns only after
    /// KVM_RUN has come back with EINTR.
    public func pause() {
        let first = parking.withLock { p -> Bool in
            defer { p.requested = true }
            return !p.requested
        }
        guard first else { return }
        vcpu.immediateExit = true
        if let t = thread.withLock({ $0 }) { VCPUKick.kick(t) }
    }

    /// Lets a paused vCPU run again. QEMU: resume_all_vcpus().
    public func resume() {
        let wake = parking.withLock { p -> Bool in
            p.requested = false
            return p.parked
        }
        if wake { resumeSignal.signal() }
    }

    /// Whether a thread is in `run()`.
    public var isRunning: Bool { parking.withLock { $0.inRun } }

    /// Whether the vCPU is out of the guest for a pause: parked, or not running at all.
    public var isParked: Bool { parking.withLock { $0.parked || !$0.inRun } }

    /// The kernel thread id of the thread running the vCPU (nil before it starts).
    /// QEMU: CPUState.thread_id (query-cpus-fast's thread-id).
    public var threadID: Int32? { parking.withLock { $0.threadID } }

    /// Handles one exit; non-nil ends the run.
    @inline(__always)
    private func handle(_ exit: VCPUExit) -> VCPUStopReason? {
        switch exit {
        case .ioOut(let port, let size, let value):
            counters.portIOCount.add(1, ordering: .relaxed)
            io.write(UInt64(port), value: value, size: size)
        case .ioIn(let port, let size):
            counters.portIOCount.add(1, ordering: .relaxed)
            let v = io.read(UInt64(port), size: size).value
            do { try vcpu.completeIoIn(value: v) } catch { return .failed("\(error)") }
        case .ioOutString(let port, let size, let count, let data):
            counters.portIOCount.add(1, ordering: .relaxed)
            for i in 0..<count {
                var v: UInt64 = 0
                for b in 0..<size { v |= UInt64(data[i * size + b]) << (8 * UInt64(b)) }
                io.write(UInt64(port), value: v, size: size)
            }
        case .ioInString(let port, let size, let count):
            counters.portIOCount.add(1, ordering: .relaxed)
            var bytes: [UInt8] = []
            bytes.reserveCapacity(size * count)
            for _ in 0..<count {
                let v = io.read(UInt64(port), size: size).value
                for b in 0..<size { bytes.append(UInt8(truncatingIfNeeded: v >> (8 * UInt64(b)))) }
            }
            do { try vcpu.completeIoIn(bytes: bytes) } catch { return .failed("\(error)") }
        case .mmioWrite(let address, let length, let value):
            counters.mmioCount.add(1, ordering: .relaxed)
            memory.write(address, value: value, size: length)
        case .mmioRead(let address, let length):
            counters.mmioCount.add(1, ordering: .relaxed)
            let v = memory.read(address, size: length).value
            do { try vcpu.completeMmioRead(value: v) } catch { return .failed("\(error)") }
        case .hlt:
            counters.otherCount.add(1, ordering: .relaxed)
            return .halted
        case .shutdown:
            return .shutdown
        case .systemEvent(let type):
            return type == 2 ? .reset : .shutdown   // KVM_SYSTEM_EVENT_RESET = 2
        case .interrupted:
            counters.otherCount.add(1, ordering: .relaxed)
            if stopRequested.load(ordering: .acquiring) { return .stopped }
            vcpu.immediateExit = false
        case .irqWindowOpen, .debug:
            counters.otherCount.add(1, ordering: .relaxed)
        case .internalError(let suberror):
            return .failed("KVM internal error (suberror \(suberror)); \(registerDump())")
        case .failEntry(let reason):
            return .failed("KVM entry failed (hardware reason 0x\(String(reason, radix: 16))); \(registerDump())")
        case .unknown(let reason):
            return .failed("unhandled KVM exit \(reason); \(registerDump())")
        }
        return stopRequested.load(ordering: .relaxed) ? .stopped : nil
    }

    /// The vCPU's registers, for a failure message.
    package func registerDump() -> String {
        do {
            let r = try vcpu.getRegisters()
            let s = try vcpu.getSpecialRegisters()
            func h(_ v: UInt64) -> String { "0x" + String(v, radix: 16) }
            return "rip=\(h(r.rip)) rsp=\(h(r.rsp)) rax=\(h(r.rax)) rbx=\(h(r.rbx)) rcx=\(h(r.rcx)) rdx=\(h(r.rdx)) "
                + "rsi=\(h(r.rsi)) rdi=\(h(r.rdi)) rflags=\(h(r.rflags)) cs=\(h(UInt64(s.cs.selector))) "
                + "cr0=\(h(s.cr0)) cr3=\(h(s.cr3)) cr4=\(h(s.cr4)) efer=\(h(s.efer))"
        } catch {
            return "registers unavailable: \(error)"
        }
    }
}

extension VCPUExit {
    /// An exit whose instruction the kernel finishes only on the next KVM_RUN (api.rst: for
    /// KVM_EXIT_IO and KVM_EXIT_MMIO "the corresponding operations are complete ... only after
    /// userspace has re-entered the kernel with KVM_RUN").
    var completesOnNextRun: Bool {
        switch self {
        case .ioOut, .ioIn, .ioOutString, .ioInString, .mmioWrite, .mmioRead: true
        default: false
        }
    }
}
