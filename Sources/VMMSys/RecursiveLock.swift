#if canImport(Glibc)
import Glibc
#endif

/// A recursive mutex (a `PTHREAD_MUTEX_RECURSIVE` pthread mutex): the memory API's big lock,
/// which a topology change made inside a transaction (or by a listener reacting to one)
/// re-enters. `Synchronization.Mutex` is not recursive. QEMU: the BQL around memory updates.
@safe package final class RecursiveLock: @unchecked Sendable {
    // @unchecked: the pthread mutex is itself the synchronization; it lives at a fixed heap
    // address for the object's lifetime (a pthread mutex must not move).
    private let mutex: UnsafeMutablePointer<pthread_mutex_t>

    package init() {
        // SAFETY: the mutex memory is allocated here, initialized by pthread_mutex_init below
        // before any other use, and freed in deinit; the attributes live on this frame and are
        // destroyed after use.
        unsafe mutex = UnsafeMutablePointer<pthread_mutex_t>.allocate(capacity: 1)
        var attributes = pthread_mutexattr_t()
        unsafe pthread_mutexattr_init(&attributes)
        unsafe pthread_mutexattr_settype(&attributes, Int32(PTHREAD_MUTEX_RECURSIVE))
        unsafe pthread_mutex_init(mutex, &attributes)
        unsafe pthread_mutexattr_destroy(&attributes)
    }

    deinit {
        // SAFETY: no thread can hold or wait on the lock once the object is being released.
        unsafe pthread_mutex_destroy(mutex)
        unsafe mutex.deallocate()
    }

    /// Takes the lock (again, if this thread holds it).
    package func lock() {
        // SAFETY: `mutex` was initialized in init and lives as long as self.
        unsafe pthread_mutex_lock(mutex)
    }

    /// Releases one level of the lock; only the thread that holds it may call this.
    package func unlock() {
        // SAFETY: as in lock().
        unsafe pthread_mutex_unlock(mutex)
    }
}
