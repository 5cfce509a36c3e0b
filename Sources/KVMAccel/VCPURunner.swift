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
    public var total: UInt64 { portIO + mmio + other }
}

/// One vCPU's run loop: `KVM_RUN`, then dispatch the exit into the I/O or memory address
/// space and write results back before the next run. QEMU: `kvm_cpu_exec()`.
///
/// Before an exit is handled, the writes the kernel coalesced (buffered in the ring instead of
/// exiting) are replayed in order, so every device sees the guest's writes in program order;
/// the ring is also drained when the vCPU stops or parks. A VM the accelerator found unable
/// to run as built (guest RAM the kernel refused to map: `VirtualMachine.failure`) is not
/// entered: the run ends with `.failed` and that reason.
public final class VCPURunner: Sendable {
    public let vcpu: VCPU
    public let memory: AddressSpace
    public let io: AddressSpace
    public let counters = ExitCounters()
    private let logger: Logger
    private let stopRequested = Atomic<Bool>(false)
    private let thread = Mutex<pthread_t?>(nil)
    /// Pausing: requested by `pause()`, acknowledged by the run loop, which then waits for
    /// `resumeSignal` outside KVM_RUN. QEMU: cpu->stop / cpu->stopped, qemu_wait_io_event().
    private let parking = Mutex<(requested: Bool, parked: Bool, inRun: Bool, threadID: Int32?)>((false, false, false, nil))
    private let resumeSignal = DispatchSemaphore(value: 0)

    public init(vcpu: VCPU, memory: AddressSpace, io: AddressSpace, logger: Logger = Logger(label: "vmm.vcpu")) {
        self.vcpu = vcpu
        self.memory = memory
        self.io = io
        self.logger = logger
        VCPUKick.installHandler()
    }

    /// Runs the vCPU on the calling thread until it stops.
    public func run() -> VCPUStopReason {
        thread.withLock { $0 = VCPUKick.currentThread() }
        let tid = HostThread.currentID
        parking.withLock { $0.inRun = true; $0.threadID = tid }
        defer {
            drainCoalesced()
            thread.withLock { $0 = nil }
            parking.withLock { $0.inRun = false }
        }
        while true {
            if stopRequested.load(ordering: .acquiring) { return .stopped }
            if let why = vcpu.vm.failure { return .failed(why) }
            if parking.withLock({ $0.requested }) {
                // Parked outside KVM_RUN with no instruction half done: the exit just handled is
                // completed first (a port read's value, an MMIO read's data, the instruction
                // pointer past an OUT) by one more KVM_RUN with immediate_exit, as QEMU's
                // kvm_cpu_exec() runs once more before it stops. Registers set while parked (a
                // reset to the reset vector) then never meet an emulation still in flight, which
                // KVM would finish against them.
                if let reason = completePendingExit() { return reason }
                drainCoalesced()
                // Parked only now: whoever waits for `isParked` may touch the registers.
                let park = parking.withLock { p -> Bool in
                    guard p.requested else { return false }
                    p.parked = true
                    return true
                }
                guard park else { vcpu.immediateExit = false; continue }
                resumeSignal.wait()
                parking.withLock { $0.parked = false }
                vcpu.immediateExit = false
                continue
            }
            let exit: VCPUExit
            do { exit = try vcpu.run() } catch { return .failed("\(error)") }
            drainCoalesced()
            if let reason = handle(exit) { return reason }
        }
    }

    /// Runs the vCPU with immediate_exit until KVM returns EINTR, handling any exit the
    /// completion of the previous one raises (an MMIO access split in pieces); bounded, as a
    /// completion raises at most a few. Non-nil ends the run. QEMU: kvm_cpu_exec()'s last
    /// KVM_RUN with immediate_exit set by qemu_cpu_kick().
    private func completePendingExit() -> VCPUStopReason? {
        for _ in 0..<16 {
            vcpu.immediateExit = true
            let exit: VCPUExit
            do { exit = try vcpu.run() } catch { return .failed("\(error)") }
            drainCoalesced()
            if case .interrupted = exit { return nil }
            if let reason = handle(exit) { return reason }
        }
        return nil
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
    public func start(name: String? = nil, completion: @escaping @Sendable (VCPUStopReason) -> Void) {
        do {
            try HostThread.start(name: name ?? "vcpu\(vcpu.id)", stackSize: 1 << 20) { [self] in completion(run()) }
        } catch {
            completion(.failed("vCPU \(vcpu.id): \(error)"))
        }
    }

    /// Asks the vCPU to stop, from any thread; it returns `.stopped` from `run()` promptly
    /// (a parked vCPU too).
    public func stop() {
        stopRequested.store(true, ordering: .releasing)
        vcpu.immediateExit = true
        if let t = thread.withLock({ $0 }) { VCPUKick.kick(t) }
        if parking.withLock({ $0.parked }) { resumeSignal.signal() }
    }

    /// Asks the vCPU to park outside KVM_RUN (kicking it out of the guest), from any thread;
    /// one that has not started parks as soon as it does (`-S`). `isParked` tells when it has.
    /// QEMU: pause_all_vcpus() → qemu_cpu_kick().
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
    public func registerDump() -> String {
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
