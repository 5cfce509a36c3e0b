import Devices
import Dispatch
import KVM
import KVMAccel
import QMP
import Synchronization
import VMMSys
#if canImport(Glibc)
import Glibc
#endif

/// The machine's run states, as QEMU names them (QMP query-status). QEMU: qapi/run-state.json.
public enum RunState: String, Sendable {
    /// The vCPUs wait (`-S`), run, are stopped, have ended, or sleep in S3.
    case prelaunch, running, paused, shutdown, suspended
    /// A vCPU hit an error KVM cannot go on from. QEMU: RUN_STATE_INTERNAL_ERROR.
    case internalError = "internal-error"
}

/// Why the machine resets. QEMU: ShutdownCause.
public enum ResetCause: String, Sendable {
    /// The guest: 0xcf9, the i8042's reset line, a triple fault. QEMU: "guest-reset".
    case guestReset = "guest-reset"
    /// QMP system_reset. QEMU: "host-qmp-system-reset".
    case hostQMP = "host-qmp-system-reset"

    var byGuest: Bool { self == .guestReset }
}

/// What the main loop is asked to do.
enum MachineRequest: Sendable {
    case reset(ResetCause)
    case suspend
    case wakeup(ACPIPMRegisters.WakeReason)
    case exit
}

/// Fan-out of machine events (QMP STOP, RESUME, RESET, POWERDOWN, SHUTDOWN) to subscribers.
/// QEMU: qapi_event_send_*() → monitor_qapi_event_emit().
public final class MachineEvents: Sendable {
    private let subscribers = Mutex<[@Sendable (String, JSONValue?) -> Void]>([])

    /// No subscribers yet.
    public init() {}

    /// Calls `handler` with every event from now on (on the thread that raised it).
    public func subscribe(_ handler: @escaping @Sendable (String, JSONValue?) -> Void) {
        subscribers.withLock { $0.append(handler) }
    }

    func emit(_ name: String, _ data: JSONValue? = nil) {
        for s in subscribers.withLock({ $0 }) { s(name, data) }
    }
}

extension PCMachine {
    /// The current run state. QEMU: runstate_get().
    public var runState: RunState { state.withLock { $0 } }

    /// Parks every vCPU outside the guest and waits until they are; STOP. From any thread but
    /// a vCPU's own. QEMU: qmp_stop() → vm_stop(RUN_STATE_PAUSED).
    public func pause() {
        transition.withLock { _ in
            let was = state.withLock { s -> RunState in
                defer { if s == .running { s = .paused } }
                return s
            }
            guard was == .running else { return }
            for r in runners { r.pause() }
            while !runners.allSatisfy(\.isParked) { sched_yield() }
            events.emit("STOP")
        }
    }

    /// Lets the vCPUs run again (also the first start after `-S`); RESUME. QEMU: qmp_cont().
    public func resume() {
        transition.withLock { _ in
            let was = state.withLock { s -> RunState in
                defer { if s == .paused || s == .prelaunch { s = .running } }
                return s
            }
            guard was == .paused || was == .prelaunch else { return }
            events.emit("RESUME")
            for r in runners { r.resume() }
        }
    }

    /// Asks for a reset, done by the main loop (never on the calling vCPU's thread). Every vCPU
    /// is asked to stop at once, so the one that asked runs no further guest code (firmware's
    /// reboot path follows its reset write with an int3 it never expects to reach).
    /// QEMU: qemu_system_reset_request() → cpu_stop_current().
    public func requestReset(_ cause: ResetCause) {
        for r in runners { r.pause() }
        requests.withLock { $0.append(.reset(cause)) }
        wakeMainLoop.signal()
    }

    /// QMP system_reset.
    public func systemReset(reason: ResetCause) { requestReset(reason) }

    /// QMP quit: SHUTDOWN (host-qmp-quit), then the run ends with status 0. QEMU: qmp_quit().
    public func quit() {
        events.emit("SHUTDOWN", .object([("guest", false), ("reason", "host-qmp-quit")]))
        state.withLock { $0 = .shutdown }
        requestExit(status: 0, reason: "QMP quit")
    }

    /// The ACPI power button: POWERDOWN, PWRBTN_STS and an SCI the guest sees.
    /// QEMU: qmp_system_powerdown() → acpi_pm1_evt_power_down().
    public func powerdown() {
        events.emit("POWERDOWN")
        devices.pmRegisters.pressPowerButton()
    }

    /// The guest wrote SLP_EN to PM1a_CNT: S5 powers off; S4 is SUSPEND_DISK and a power-off,
    /// as QEMU does without S4 support; S3 suspends (on the main loop; every vCPU stops at once).
    /// QEMU: acpi_pm1_cnt_write() → qemu_system_shutdown_request() / qemu_system_suspend_request().
    func guestSleep(_ state: ACPIPMRegisters.SleepState) {
        switch state {
        case .s5:
            guestPowerOff()
        case .s4:
            events.emit("SUSPEND_DISK")
            guestPowerOff()
        case .s3:
            for r in runners { r.pause() }
            requests.withLock { $0.append(.suspend) }
            wakeMainLoop.signal()
        }
    }

    /// S3 on the main loop: every vCPU parked, the RTC's shutdown status byte 0xfe (what
    /// firmware reads at the reset vector to resume), state suspended, SUSPEND. A second
    /// request while suspended is ignored. QEMU: qemu_system_suspend() (rtc_notify_suspend()).
    func performSuspend() {
        transition.withLock { _ in
            guard state.withLock({ $0 }) != .suspended else { return }
            for r in runners { r.pause() }
            while !runners.allSatisfy(\.isParked) { sched_yield() }
            devices.cmos.setByte(0xfe, at: CMOS.Register.shutdownStatus)
            state.withLock { $0 = .suspended }
            events.emit("SUSPEND")
        }
    }

    /// The RTC alarm fired with AIE set: a wake-up if the guest enabled RTC_EN. QEMU:
    /// qemu_system_wakeup_request(QEMU_WAKEUP_REASON_RTC) with the reason masked by RTC_EN.
    func rtcAlarm() {
        guard devices.pmRegisters.rtcWakeEnabled else { return }
        _ = requestWakeup(.rtc)
    }

    /// Asks a suspended machine to wake; false (and nothing happens) when it is not suspended.
    /// The state is running from here on, as QEMU sets it in the request. QEMU:
    /// qemu_system_wakeup_request().
    @discardableResult
    public func requestWakeup(_ reason: ACPIPMRegisters.WakeReason) -> Bool {
        let woke = state.withLock { s -> Bool in
            guard s == .suspended else { return false }
            s = .running
            return true
        }
        guard woke else { return false }
        requests.withLock { $0.append(.wakeup(reason)) }
        wakeMainLoop.signal()
        return true
    }

    /// The wake-up on the main loop: the machine resets as for a reboot, keeping RAM — with
    /// firmware every vCPU at the reset vector, where SeaBIOS finds the shutdown status 0xfe and
    /// jumps to the FACS waking vector; in the direct boot the machine does that itself — then
    /// WAK_STS and the reason's status bit, the vCPUs running, WAKEUP. QEMU: main_loop_should_exit()
    /// → qemu_system_wakeup() → pc_machine_wakeup() (pc_machine_reset()), acpi_notify_wakeup().
    func performWakeup(_ reason: ACPIPMRegisters.WakeReason) {
        transition.withLock { _ in
            for r in runners { r.pause() }
            while !runners.allSatisfy(\.isParked) { sched_yield() }
            do {
                try rebootSoftware(wakeup: true)
            } catch {
                logger.error("wake-up: \(error)")
                requestExit(status: 1, reason: "wake-up failed")
                return
            }
            devices.pmRegisters.noteWakeup(reason)
            for (i, r) in runners.enumerated() {
                r.resume()
                if !r.isRunning { startVCPU(i, r) }
            }
            events.emit("WAKEUP")
        }
    }

    /// The guest powered off (ACPI S5): SHUTDOWN (guest-shutdown), status 0.
    func guestPowerOff() {
        events.emit("SHUTDOWN", .object([("guest", true), ("reason", "guest-shutdown")]))
        state.withLock { $0 = .shutdown }
        requestExit(status: 0, reason: "ACPI soft-off (PM1a_CNT SLP_EN, S5)")
    }

    /// A reset, on the main loop. With `-no-reboot` a guest reset ends the run (SHUTDOWN
    /// guest-reset, status 0), as QEMU; otherwise RESET and a reboot: vCPUs parked, devices
    /// reset, the kernel loaded again and entered, vCPUs resumed in their previous state.
    /// QEMU: qemu_system_reset() (qemu_devices_reset + cpu resets; firmware then reloads).
    func performReset(_ cause: ResetCause) {
        if cause.byGuest && configuration.noReboot {
            events.emit("SHUTDOWN", .object([("guest", true), ("reason", .string(cause.rawValue))]))
            state.withLock { $0 = .shutdown }
            requestExit(status: 0, reason: "guest reset with -no-reboot")
            return
        }
        transition.withLock { _ in
            for r in runners { r.pause() }
            while !runners.allSatisfy(\.isParked) { sched_yield() }
            do {
                try rebootSoftware()
            } catch {
                logger.error("reset: \(error)")
                requestExit(status: 1, reason: "reset failed")
                return
            }
            events.emit("RESET", .object([("guest", .bool(cause.byGuest)), ("reason", .string(cause.rawValue))]))
            let running = state.withLock { $0 == .running }
            for (i, r) in runners.enumerated() {
                if running { r.resume() }
                if !r.isRunning { startVCPU(i, r) }
            }
        }
    }

    /// Devices to their reset state; then, with firmware, every vCPU at the reset vector (the
    /// BSP running, the APs waiting for INIT/SIPI) and RAM left as it was, as QEMU's
    /// pc_machine_reset() does; without firmware, the kernel loaded again and the BSP at its
    /// entry, the APs waiting for INIT/SIPI again.
    private func rebootSoftware(wakeup: Bool = false) throws {
        let guest = memory.guestMemory
        // Waking without firmware: SeaBIOS's s3_resume() — the FACS waking vector, entered in
        // real mode; none set, and SeaBIOS reboots (tryReboot()), so the machine boots again.
        var wakingVector: UInt32?
        if wakeup, bios == nil, let facs = acpiFACS.withLock({ $0 }),
           let vector = try? guest.load(UInt32.self, at: facs + 12), vector != 0 {
            wakingVector = vector
            devices.cmos.setByte(0, at: CMOS.Register.shutdownStatus)   // handle_resume() clears it
        }
        devices.reset(wakeup: wakingVector != nil)
        var boot: KernelBoot?
        if bios == nil, wakingVector == nil {
            guard let kernelPath = configuration.kernel else { return }
            let loaded = try Self.loadSoftware(configuration: configuration, layout: layout, kernelPath: kernelPath,
                                               amdHost: core.amdHost, fwCfg: devices.fwCfg, guest: guest, logger: logger)
            boot = loaded.boot
            acpiFACS.withLock { $0 = loaded.acpi?.facs }
        }
        if wakingVector == nil { self.boot.withLock { $0 = boot } }
        try InterruptControllerSetup.reset(vm)
        if bios == nil { try InterruptControllerSetup.programELCR(vm) }
        for (id, r) in runners.enumerated() {
            try r.vcpu.clearPendingEvents()
            VCPUSetup.setInitialMSRs(r.vcpu, logger: logger)
            try VCPUSetup.powerOnLocalAPIC(r.vcpu)
            try VCPUSetup.resetLocalAPIC(r.vcpu, bsp: id == 0)
            if bios != nil {
                let cpuid = CPUIDPolicy.entries(supported: core.supportedCPUID, apicID: UInt32(id), cpuCount: configuration.cpuCount)
                try VCPUSetup.resetToResetVector(r.vcpu, bsp: id == 0, signature: CPUIDPolicy.signature(cpuid))
            }
            if id == 0 {
                try r.vcpu.setMPState(.runnable)
                if let wakingVector {
                    try VCPUSetup.enterRealMode(r.vcpu, at: wakingVector)
                } else if let boot {
                    try boot.enter(r.vcpu, memory: guest)
                }
            } else {
                try r.vcpu.setMPState(.uninitialized)
            }
        }
    }
}
