internal import CKVM

/// One CPUID leaf as KVM exchanges it (`struct kvm_cpuid_entry2`).
///
/// `function` is EAX on input (the leaf), `index` is ECX on input (the subleaf, meaningful
/// when `flags` has `significantIndex`), and eax…edx are the output registers.
public struct CPUIDEntry: Sendable, Hashable {
    /// The leaf: EAX on input (`kvm_cpuid_entry2.function`).
    public var function: UInt32
    /// The subleaf: ECX on input (`kvm_cpuid_entry2.index`).
    public var index: UInt32
    /// `KVM_CPUID_FLAG_*` bits, e.g. ``significantIndex`` (`kvm_cpuid_entry2.flags`).
    public var flags: UInt32
    /// EAX on output (`kvm_cpuid_entry2.eax`).
    public var eax: UInt32
    /// EBX on output (`kvm_cpuid_entry2.ebx`).
    public var ebx: UInt32
    /// ECX on output (`kvm_cpuid_entry2.ecx`).
    public var ecx: UInt32
    /// EDX on output (`kvm_cpuid_entry2.edx`).
    public var edx: UInt32

    /// `KVM_CPUID_FLAG_SIGNIFCANT_INDEX`: the subleaf (`index`) selects this entry.
    public static let significantIndex: UInt32 = 1

    /// An entry for leaf `function` (subleaf `index`), every output register 0 unless given.
    public init(function: UInt32, index: UInt32 = 0, flags: UInt32 = 0,
                eax: UInt32 = 0, ebx: UInt32 = 0, ecx: UInt32 = 0, edx: UInt32 = 0) {
        self.function = function
        self.index = index
        self.flags = flags
        self.eax = eax
        self.ebx = ebx
        self.ecx = ecx
        self.edx = edx
    }

    init(_ e: kvm_cpuid_entry2) {
        self.init(function: e.function, index: e.index, flags: e.flags,
                  eax: e.eax, ebx: e.ebx, ecx: e.ecx, edx: e.edx)
    }

    var raw: kvm_cpuid_entry2 {
        var e = kvm_cpuid_entry2()
        e.function = function
        e.index = index
        e.flags = flags
        e.eax = eax
        e.ebx = ebx
        e.ecx = ecx
        e.edx = edx
        return e
    }
}

/// A `struct kvm_cpuid2` with room for `capacity` entries (a header plus a flexible array),
/// in 8-byte aligned storage.
struct CPUIDBuffer {
    private var storage: [UInt64]
    let capacity: Int

    private static let headerSize = MemoryLayout<kvm_cpuid2>.size
    private static let entrySize = MemoryLayout<kvm_cpuid_entry2>.stride

    init(capacity: Int) {
        self.capacity = capacity
        let bytes = CPUIDBuffer.headerSize + capacity * CPUIDBuffer.entrySize
        storage = [UInt64](repeating: 0, count: (bytes + 7) / 8)
        // SAFETY: the storage holds at least the header, whose first field is nent.
        unsafe storage.withUnsafeMutableBytes { unsafe $0.storeBytes(of: UInt32(capacity), as: UInt32.self) }
    }

    init(entries: [CPUIDEntry]) {
        self.init(capacity: entries.count)
        // SAFETY: the storage was sized for the header and entries.count entries.
        unsafe storage.withUnsafeMutableBytes { raw in
            for (i, entry) in entries.enumerated() {
                unsafe raw.storeBytes(of: entry.raw, toByteOffset: CPUIDBuffer.headerSize + i * CPUIDBuffer.entrySize,
                                      as: kvm_cpuid_entry2.self)
            }
        }
    }

    /// Calls `body` with the address of the `kvm_cpuid2` header (valid only during the call).
    mutating func withHeader<R>(_ body: (UnsafeMutableRawPointer) -> R) -> R {
        // SAFETY: the pointer is used only inside `body`, while the storage is pinned.
        unsafe storage.withUnsafeMutableBytes { unsafe body($0.baseAddress!) }
    }

    /// The entries the kernel reported (`nent`, clamped to the capacity).
    var entries: [CPUIDEntry] {
        // SAFETY: reads at most `capacity` entries, which the storage was sized for.
        unsafe storage.withUnsafeBytes { raw in
            let count = min(Int(unsafe raw.load(as: UInt32.self)), capacity)
            return (0..<count).map { i in
                CPUIDEntry(unsafe raw.load(fromByteOffset: CPUIDBuffer.headerSize + i * CPUIDBuffer.entrySize,
                                           as: kvm_cpuid_entry2.self))
            }
        }
    }
}
