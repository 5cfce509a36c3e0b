internal import CKVM
#if canImport(Glibc)
import Glibc
#endif

/// Starts detached POSIX threads without Foundation: the vCPU loops, the I/O thread and the
/// monitor/QMP connections each run on one.
package enum HostThread {
    /// The calling thread's kernel thread id (gettid).
    package static var currentID: Int32 { ckvm_gettid() }

    private final class Start {
        let name: String
        let body: () -> Void
        init(name: String, body: @escaping () -> Void) {
            self.name = name
            self.body = body
        }
    }

    /// Runs `body` on a new detached thread named `name` (at most 15 bytes are kept, as Linux
    /// allows), with a stack of `stackSize` bytes if given (else the process default).
    package static func start(name: String, stackSize: Int? = nil, _ body: @escaping @Sendable () -> Void) throws(SystemError) {
        var attributes = pthread_attr_t()
        // SAFETY: `attributes` is initialized here and destroyed on every path out.
        unsafe pthread_attr_init(&attributes)
        defer { unsafe pthread_attr_destroy(&attributes) }
        // SAFETY: as above; detached threads free their own resources when they end.
        unsafe pthread_attr_setdetachstate(&attributes, Int32(PTHREAD_CREATE_DETACHED))
        if let stackSize {
            // SAFETY: as above; the size is checked by the call (EINVAL below the minimum).
            let rc = unsafe pthread_attr_setstacksize(&attributes, stackSize)
            guard rc == 0 else { throw SystemError(operation: "pthread_attr_setstacksize", arguments: "\(name) \(stackSize)", errno: rc) }
        }
        // SAFETY: the box is retained (+1) across pthread_create and released exactly once, by
        // the new thread (its only owner once it runs) or below if no thread was created.
        let context = unsafe Unmanaged.passRetained(Start(name: name, body: body)).toOpaque()
        var thread = pthread_t()
        // SAFETY: `context` is the +1 reference above; the new thread takes it exactly once.
        let rc = unsafe pthread_create(&thread, &attributes, { raw in
            // SAFETY: `raw` is the `context` passed to pthread_create, retained for this thread.
            let start = unsafe Unmanaged<Start>.fromOpaque(raw!).takeRetainedValue()
            // SAFETY: the String-to-C-string conversion stays valid for the call, which copies it.
            _ = unsafe ckvm_set_thread_name(String(start.name.utf8.prefix(15))!)
            start.body()
            return nil
        }, context)
        guard rc == 0 else {
            // SAFETY: no thread was created, so the reference is still ours to release.
            unsafe Unmanaged<Start>.fromOpaque(context).release()
            throw SystemError(operation: "pthread_create", arguments: name, errno: rc)
        }
    }
}
