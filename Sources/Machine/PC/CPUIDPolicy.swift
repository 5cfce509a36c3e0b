import KVM

/// What each vCPU is told by CPUID: the host's supported leaves (KVM_GET_SUPPORTED_CPUID), with
/// the hypervisor bit, this vCPU's APIC ID and the machine's topology (one socket, `cpuCount`
/// cores, one thread each), as QEMU's `-cpu host` presents them.
public enum CPUIDPolicy {
    /// Returns `supported` adjusted for vCPU `apicID` of `cpuCount`.
    public static func entries(supported: [CPUIDEntry], apicID: UInt32, cpuCount: Int) -> [CPUIDEntry] {
        let count = UInt32(max(1, min(cpuCount, 255)))
        return supported.map { e in
            var e = e
            switch e.function {
            case 1:
                e.ecx |= 1 << 31                                        // hypervisor present
                e.ebx = (e.ebx & 0x0000_ffff) | (apicID << 24) | (min(count, 255) << 16)
                if count > 1 { e.edx |= 1 << 28 } else { e.edx &= ~(1 << 28) }   // HTT: >1 logical CPU
            case 4:
                // Cache topology: EAX[31:26] = cores per package - 1; EAX[25:14] = sharing - 1.
                let cores = min(count, 64) - 1
                e.eax = (e.eax & 0x03ff_ffff) | (cores << 26)
                let level = (e.eax >> 5) & 7
                let sharing: UInt32 = level >= 3 ? count - 1 : 0
                e.eax = (e.eax & ~(0xfff << 14)) | ((sharing & 0xfff) << 14)
            case 0xb, 0x1f:
                // Extended topology: subleaf 0 = SMT (1 thread), subleaf 1 = core (count).
                switch e.index {
                case 0:
                    e.eax = 0
                    e.ebx = 1
                    e.ecx = (1 << 8) | e.index
                case 1:
                    e.eax = shift(for: count)
                    e.ebx = count
                    e.ecx = (2 << 8) | e.index
                default:
                    e.eax = 0
                    e.ebx = 0
                    e.ecx = e.index
                }
                e.edx = apicID
            default:
                break
            }
            return e
        }
    }

    /// The CPU signature (family, model, stepping: CPUID 1 EAX) a CPU reports in EDX at reset.
    /// QEMU: x86_cpu_reset_hold() (env->regs[R_EDX] = env->cpuid_version).
    public static func signature(_ entries: [CPUIDEntry]) -> UInt32 {
        entries.first { $0.function == 1 }?.eax ?? 0
    }

    /// Bits of APIC ID needed to number `count` cores.
    static func shift(for count: UInt32) -> UInt32 {
        var s: UInt32 = 0
        while (1 << s) < count { s += 1 }
        return s
    }
}
