import KVM
import KVMAccel
import Loader
import Memory

/// `-kernel FILE` as QEMU's x86 machines take it: a Linux bzImage (setup header "HdrS") boots
/// through the Linux boot protocol, anything else must be Multiboot. QEMU: `x86_load_linux()`
/// (which falls back to `load_multiboot()`).
enum KernelBoot {
    case multiboot(MultibootBootInfo)
    case linux(LinuxBootInfo)

    static func load(_ kernel: [UInt8], path: String, configuration c: MachineConfiguration, layout: PCMemoryLayout,
                     usableRAM: [Range<UInt64>], memoryMap: [E820Entry], into guest: GuestMemory) throws -> KernelBoot {
        if LinuxLoader.isLinuxKernel(kernel) {
            var initrd: [UInt8]?
            if let path = c.initrd { initrd = try MultibootLoader.readFile(path, what: "initrd") }
            let info = try LinuxLoader.load(
                kernel: kernel,
                configuration: LinuxBootConfiguration(kernelPath: path, commandLine: c.append, initrd: initrd,
                                                      initrdPath: c.initrd, memoryMap: memoryMap, ramBelow4G: layout.below4G),
                into: guest)
            return .linux(info)
        }
        let info = try MultibootLoader.load(
            kernel: kernel,
            configuration: MultibootConfiguration(
                kernelPath: path, commandLine: c.append,
                modules: c.initrd.map { MultibootModule.parseList($0) } ?? [],
                usableRAM: usableRAM, ramBelow4G: layout.below4G, memoryMap: memoryMap),
            into: guest)
        return .multiboot(info)
    }

    /// Puts the boot CPU in the state the kernel's entry expects.
    func enter(_ vcpu: VCPU, memory: GuestMemory) throws {
        switch self {
        case .multiboot(let b):
            try X86Boot.enterProtectedMode32(vcpu, memory: memory, entry: b.entryPoint, eax: b.eax, ebx: b.ebx)
        case .linux(let b):
            if let entry64 = b.entryPoint64 {
                try X86Boot.enterLinux(vcpu, memory: memory, entry: entry64, bootParams: b.bootParamsAddress, longMode: true)
            } else {
                try X86Boot.enterLinux(vcpu, memory: memory, entry: UInt64(b.entryPoint32), bootParams: b.bootParamsAddress,
                                       longMode: false)
            }
        }
    }
}
