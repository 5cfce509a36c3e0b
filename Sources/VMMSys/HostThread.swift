internal import CKVM
#if canImport(Glibc)
import Glibc
#endif

/// Starts detached POSIX threads without Foundation: the vCPU loops, the I/O thread and the
/// monitor/QMP connections each run on one.
public enum HostThread {
    private final class Start {
        let name: String
        let body: () -> Void
        init(name: String, body: @escaping () -> Void) {
            self.name = name
            self.body = body
        }
    }

    /// Runs `body` on a new detached thread named `name` (at most 15 bytes are kept, as Linux
    /// allows).
    public static func start(name: String, _ body: @escaping @Sendable () -> Void) throws(SystemError) {
        // The box is retained across pthread_create and released by the new thread: it is the
        // only owner once the thread runs.
        let context = Unmanaged.passRetained(Start(name: name, body: body)).toOpaque()
        var thread = pthread_t()
        let rc = pthread_create(&thread, nil, { raw in
            let start = Unmanaged<Start>.fromOpaque(raw!).takeRetainedValue()
            _ = ckvm_set_thread_name(String(start.name.utf8.prefix(15))!)
            start.body()
            return nil
        }, context)
        guard rc == 0 else {
            Unmanaged<Start>.fromOpaque(context).release()
            throw SystemError(operation: "pthread_create", arguments: name, errno: rc)
        }
        pthread_detach(thread)
    }
}
