internal import CKVM
import SystemPackage
import VMMSys
#if canImport(Glibc)
import Glibc
#endif

/// The `/dev/kvm` handle: system-wide queries and the factory for virtual machines.
/// rust-vmm: `kvm_ioctls::Kvm`.
///
/// Opening checks the API version (must be 12, the only stable one) and reads the size of
/// the per-vCPU `kvm_run` mapping once, because every vCPU needs it. Immutable after init,
/// so it is `Sendable`; the descriptor is closed when the last reference goes.
public final class KVMSystem: Sendable {
    /// The `/dev/kvm` descriptor.
    public let fileDescriptor: FileDescriptor
    /// `KVM_GET_API_VERSION` (always 12 for an opened system).
    public let apiVersion: Int
    /// `KVM_GET_VCPU_MMAP_SIZE`: bytes to map from each vCPU descriptor (kvm_run + I/O data).
    public let vcpuMmapSize: Int

    /// The only KVM API version this module speaks.
    public static let requiredAPIVersion = 12

    /// Opens `path` read/write, close-on-exec, and checks the API version.
    /// - Throws: `SystemError(operation: "open /dev/kvm")` with errno ENOENT (no KVM module or
    ///   device node) or EACCES (not in the kvm group), so the user sees the actual cause;
    ///   EOPNOTSUPP for an API version other than 12.
    /// QEMU: the `/dev/kvm` part of `kvm_init()`.
    public init(path: String = "/dev/kvm") throws(SystemError) {
        let fd = try systemCall("open \(path)") {
            try FileDescriptor.open(FilePath(path), .readWrite, options: .closeOnExec)
        }
        do throws(SystemError) {
            let version = try KVMIoctl.call(fd, CKVM_GET_API_VERSION, "KVM_GET_API_VERSION", integer: 0)
            guard version == KVMSystem.requiredAPIVersion else {
                throw SystemError(operation: "KVM_GET_API_VERSION",
                                  arguments: "got \(version), need \(KVMSystem.requiredAPIVersion)",
                                  errno: EOPNOTSUPP)
            }
            let size = try KVMIoctl.call(fd, CKVM_GET_VCPU_MMAP_SIZE, "KVM_GET_VCPU_MMAP_SIZE", integer: 0)
            guard size >= Int32(CKVM_RUN_SIZE) else {
                throw SystemError(operation: "KVM_GET_VCPU_MMAP_SIZE", arguments: "size=\(size)", errno: EINVAL)
            }
            fileDescriptor = fd
            apiVersion = Int(version)
            vcpuMmapSize = Int(size)
        } catch {
            try? fd.close()
            throw error
        }
    }

    deinit { try? fileDescriptor.close() }

    /// `KVM_CHECK_EXTENSION`: 0 if the capability (a `KVM_CAP_*` number) is absent, otherwise
    /// a positive, capability-specific value (often 1, sometimes a limit). An ioctl failure
    /// also reads as 0: an extension the kernel cannot answer for is not usable.
    /// QEMU: `kvm_check_extension()`.
    public func checkExtension(_ capability: Int32) -> Int {
        let r = try? KVMIoctl.call(fileDescriptor, CKVM_CHECK_EXTENSION, "KVM_CHECK_EXTENSION",
                                   integer: UInt(bitPattern: Int(capability)))
        return r.map(Int.init) ?? 0
    }

    /// `KVM_GET_SUPPORTED_CPUID`: every CPUID leaf/subleaf KVM can present to a guest, with
    /// the feature bits it can virtualize. The starting point for a vCPU's `setCPUID`. The
    /// buffer grows until the kernel stops answering E2BIG. QEMU: `try_get_cpuid()`.
    public func supportedCPUID() throws(SystemError) -> [CPUIDEntry] {
        var capacity = 128
        while true {
            var buffer = CPUIDBuffer(capacity: capacity)
            let fd = fileDescriptor
            let n = capacity
            // SAFETY: the buffer is a kvm_cpuid2 whose nent is its real capacity.
            let result = unsafe buffer.withHeader { header in
                Result { () throws(SystemError) in
                    try unsafe KVMIoctl.call(fd, CKVM_GET_SUPPORTED_CPUID, "KVM_GET_SUPPORTED_CPUID",
                                             "nent=\(n)", pointer: header)
                }
            }
            switch result {
            case .success: return buffer.entries
            case .failure(let error) where error.errno == E2BIG && capacity < 1 << 16:
                capacity *= 2
            case .failure(let error): throw error
            }
        }
    }

    /// `KVM_GET_MSR_INDEX_LIST`: the MSRs KVM saves and restores for a guest (what a
    /// snapshot or migration must carry). QEMU: `kvm_get_supported_msrs()`.
    public func msrIndexList() throws(SystemError) -> [UInt32] {
        var capacity = 256
        while true {
            var storage = [UInt32](repeating: 0, count: 1 + capacity)
            storage[0] = UInt32(capacity)
            let fd = fileDescriptor
            let n = capacity
            // SAFETY: the storage is a kvm_msr_list whose nmsrs (storage[0]) is its real capacity.
            let result = unsafe storage.withUnsafeMutableBytes { raw in
                Result { () throws(SystemError) in
                    try unsafe KVMIoctl.call(fd, CKVM_GET_MSR_INDEX_LIST, "KVM_GET_MSR_INDEX_LIST", "nmsrs=\(n)",
                                             pointer: raw.baseAddress!)
                }
            }
            switch result {
            case .success: return Array(storage[1..<(1 + min(Int(storage[0]), capacity))])
            case .failure(let error) where error.errno == E2BIG && capacity < 1 << 16:
                capacity = max(capacity * 2, Int(storage[0]))
            case .failure(let error): throw error
            }
        }
    }

    /// `KVM_CREATE_VM` (type 0, the default x86 VM). QEMU: the `KVM_CREATE_VM` in `kvm_init()`.
    public func createVM() throws(SystemError) -> VirtualMachine {
        let fd = try KVMIoctl.call(fileDescriptor, CKVM_CREATE_VM, "KVM_CREATE_VM", "type=0", integer: 0)
        return VirtualMachine(fileDescriptor: FileDescriptor(rawValue: fd), system: self)
    }
}
