internal import CKVM
import SystemPackage
#if canImport(Glibc)
import Glibc
#endif

/// An owned anonymous or file-backed mapping, unmapped when released.
///
/// Guest RAM and the vCPU's `kvm_run` page are both mappings; this type owns one and hands its
/// base address out only as an integer (`hostAddress`, what `KVM_SET_USER_MEMORY_REGION`
/// wants) or through the bounds-checked accessors of the memory layer.
@safe public final class MappedMemory: @unchecked Sendable {
    // @unchecked: the mapping itself never moves or changes size after init; concurrent
    // access to its *contents* is the guest's and devices' business, exactly as with RAM.

    /// Base address of the mapping.
    public let base: UnsafeMutableRawPointer
    /// Length in bytes (a multiple of the page size).
    public let length: Int

    /// The host page size.
    public static let pageSize: Int = Int(sysconf(Int32(_SC_PAGESIZE)))

    /// Maps `length` bytes of zeroed anonymous memory (rounded up to whole pages).
    public init(anonymous length: Int) throws(SystemError) {
        let page = MappedMemory.pageSize
        let rounded = max(page, (length + page - 1) / page * page)
        // SAFETY: a fresh anonymous mapping at an address the kernel picks touches no existing memory.
        let p = unsafe mmap(nil, rounded, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0)
        guard let p = unsafe p, unsafe p != MAP_FAILED else {
            throw SystemError(operation: "mmap", arguments: "anonymous length=\(rounded)", errno: currentErrno())
        }
        // SAFETY: `p` is the mapping just made; this object owns it until deinit.
        unsafe base = p
        self.length = rounded
    }

    /// Maps `length` bytes of zeroed anonymous memory for guest RAM, aligned to 2 MiB and
    /// advised for transparent huge pages, as QEMU maps RAM blocks (`qemu_ram_mmap()` aligns to
    /// `QEMU_VMALLOC_ALIGN`, `ram_block_add()` calls `qemu_madvise(QEMU_MADV_HUGEPAGE)`).
    public init(guestRAM length: Int) throws(SystemError) {
        let page = MappedMemory.pageSize
        let huge = 2 << 20
        let rounded = max(page, (length + page - 1) / page * page)
        let reserve = rounded + huge
        // SAFETY: a fresh anonymous mapping at an address the kernel picks touches no existing memory.
        guard let p = unsafe mmap(nil, reserve, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0),
              unsafe p != MAP_FAILED else {
            throw SystemError(operation: "mmap", arguments: "anonymous length=\(reserve)", errno: currentErrno())
        }
        let start = UInt(bitPattern: p)
        let aligned = (start + UInt(huge) - 1) & ~UInt(huge - 1)
        let head = Int(aligned - start)
        let tail = reserve - head - rounded
        // SAFETY: head and tail lie inside the reservation just made and nothing else uses them;
        // what stays mapped is [p + head, p + head + rounded).
        if head > 0 { unsafe munmap(p, head) }
        if tail > 0 { unsafe munmap(p + head + rounded, tail) }
        unsafe base = p + head
        self.length = rounded
        // SAFETY: advice on this object's own mapping; it changes no contents.
        if rounded >= huge { _ = unsafe madvise(base, rounded, MADV_HUGEPAGE) }
    }

    /// Asks for small pages over the 2 MiB-aligned span covering `offset..<offset+length`
    /// (MADV_NOHUGEPAGE): for a small area written once (firmware tables at the top of RAM),
    /// where a transparent huge page would make the host commit 2 MiB for a few KiB. Ranges
    /// outside the mapping are clamped to it.
    package func preferSmallPages(offset: Int, length: Int) {
        let huge = 2 << 20
        guard offset >= 0, length > 0, offset < self.length else { return }
        let start = offset / huge * huge
        let end = min(self.length, (min(offset, Int.max - length) + length + huge - 1) / huge * huge)
        guard end > start else { return }
        // SAFETY: advice on a range inside this object's own mapping; it changes no contents.
        _ = unsafe madvise(base + start, end - start, MADV_NOHUGEPAGE)
    }

    /// Maps `length` bytes of `fileDescriptor` shared, at `offset` (the `kvm_run` page).
    public init(fileDescriptor: FileDescriptor, length: Int, offset: Int = 0, operation: String = "mmap") throws(SystemError) {
        // SAFETY: a fresh shared mapping at an address the kernel picks touches no existing memory.
        let p = unsafe mmap(nil, length, PROT_READ | PROT_WRITE, MAP_SHARED, fileDescriptor.rawValue, off_t(offset))
        guard let p = unsafe p, unsafe p != MAP_FAILED else {
            throw SystemError(operation: operation, arguments: "fd=\(fileDescriptor.rawValue) length=\(length)", errno: currentErrno())
        }
        // SAFETY: `p` is the mapping just made; this object owns it until deinit.
        unsafe base = p
        self.length = length
    }

    // SAFETY: unmaps exactly the range this object mapped, once nothing references the object.
    deinit { unsafe munmap(base, length) }

    /// The mapping's address as an integer.
    public var hostAddress: UInt64 { UInt64(unsafe UInt(bitPattern: base)) }
}
