import ProcessSupport
#if canImport(Glibc)
import Glibc
#endif

/// What this host offers the tests, each checked once per test process. Suites that need a
/// facility are gated on it: `@Suite(.enabled(if: TestHost.kvmAvailable, "requires read/write access to /dev/kvm"))`.
public enum TestHost {
    /// Whether /dev/kvm opens read-write (what creating a VM needs).
    public static let kvmAvailable: Bool = {
        let fd = open("/dev/kvm", O_RDWR | O_CLOEXEC)
        guard fd >= 0 else { return false }
        close(fd)
        return true
    }()

    /// Whether the host's KVM is kvm_pvm (the module emulates guest supervisor code instead of
    /// using VMX/SVM). A few of its answers differ from hardware KVM's; tests name them.
    public static let isKVMPVM: Bool = access("/sys/module/kvm_pvm", F_OK) == 0

    /// Whether gcc, as and ld are installed (the guest kernels under Guests/ are built with them).
    public static let toolchainAvailable = ["gcc", "as", "ld"].allSatisfy { ChildProcess.which($0) != nil }

    /// qemu-system-x86_64, the reference the end-to-end tests compare with, if installed.
    public static let qemuPath: String? = ChildProcess.which("qemu-system-x86_64")

    /// The `vmm` executable built next to the running test bundle
    /// (`.build/<triple>/<configuration>/`), if there is one.
    public static let vmmPath: String? = {
        var buffer = [CChar](repeating: 0, count: 4096)
        let n = readlink("/proc/self/exe", &buffer, buffer.count - 1)
        guard n > 0 else { return nil }
        var directory = String(decoding: buffer[0..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self)
        while let slash = directory.lastIndex(of: "/") {
            directory = String(directory[..<slash])
            let candidate = directory + "/vmm"
            if access(candidate, X_OK) == 0 { return candidate }
            if directory.hasSuffix("/.build") || directory.isEmpty { break }
        }
        return nil
    }()
}
