#if canImport(Glibc)
import Glibc
#endif

/// The process's environment and file-system questions the machine and the command line ask,
/// so that modules outside the host layer hold no unsafe code (C strings, `stat` buffers).
public enum HostEnvironment {
    /// The value of environment variable `name`, or nil when it is not set.
    public static func value(_ name: String) -> String? {
        // SAFETY: getenv returns NULL or a NUL-terminated string owned by the environment,
        // copied into a Swift String before anything could change it.
        unsafe getenv(name).map { unsafe String(cString: $0) }
    }

    /// Whether `path` names an existing file (of any kind).
    public static func fileExists(_ path: String) -> Bool {
        // SAFETY: the String-to-C-string conversion is valid for the call.
        unsafe access(path, F_OK) == 0
    }

    /// Whether this process may read `path` (`access(2)` with R_OK): how QEMU's firmware
    /// search decides a candidate exists. QEMU: qemu_find_file().
    public static func isReadable(_ path: String) -> Bool {
        // SAFETY: the String-to-C-string conversion is valid for the call.
        unsafe access(path, R_OK) == 0
    }

    /// Removes the file `path` (a temporary file of a benchmark); false when it could not.
    @discardableResult
    public static func removeFile(_ path: String) -> Bool {
        // SAFETY: the String-to-C-string conversion is valid for the call.
        unsafe unlink(path) == 0
    }

    /// This process's id.
    public static var processID: Int32 { getpid() }

    /// What `stat(2)` says about `path`: whether it is a regular file, and its size; nil when it
    /// cannot be examined (missing, no permission).
    public static func fileStatus(_ path: String) -> (isRegularFile: Bool, size: UInt64)? {
        var st = stat()
        // SAFETY: stat writes one `struct stat` into the local.
        guard unsafe stat(path, &st) == 0 else { return nil }
        return (st.st_mode & S_IFMT == S_IFREG, UInt64(clamping: st.st_size))
    }

    /// The C library's message for an errno value ("No such file or directory").
    public static func message(forErrno code: Int32) -> String {
        // SAFETY: strerror returns a NUL-terminated string, copied at once.
        unsafe String(cString: strerror(code))
    }
}
