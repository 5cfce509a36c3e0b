#if canImport(Glibc)
import Glibc
#endif
import Synchronization

/// Getting a vCPU thread out of `KVM_RUN` from another thread: set `immediate_exit`, then
/// send the thread a signal whose handler does nothing. The signal interrupts a running
/// `KVM_RUN`; `immediate_exit` covers the window before the thread enters it.
/// QEMU: `qemu_cpu_kick()` with `SIG_IPI`; kvmtool: `kvm_cpu__reboot()` via SIGKVMEXIT.
enum VCPUKick {
    static let signal: Int32 = SIGUSR1
    private static let installed = Mutex(false)

    /// Installs the no-op handler once per process (without SA_RESTART).
    static func installHandler() {
        installed.withLock { done in
            guard !done else { return }
            var action = sigaction()
            // SAFETY: sa_handler is the union member the kernel reads without SA_SIGINFO (flags 0);
            // each call reads or writes only the local `action` (the old action is not wanted).
            unsafe action.__sigaction_handler.sa_handler = { _ in }
            unsafe sigemptyset(&action.sa_mask)
            action.sa_flags = 0
            unsafe sigaction(signal, &action, nil)
            done = true
        }
    }

    /// The calling thread's identity, for `kick`; also makes sure the kick signal is not
    /// blocked on this thread (thread pools may block everything).
    static func currentThread() -> pthread_t {
        var set = sigset_t()
        // SAFETY: each call reads or writes only the local `set` (the old mask is not wanted).
        unsafe sigemptyset(&set)
        unsafe sigaddset(&set, signal)
        unsafe pthread_sigmask(SIG_UNBLOCK, &set, nil)
        return pthread_self()
    }

    static func kick(_ thread: pthread_t) { pthread_kill(thread, signal) }
}
