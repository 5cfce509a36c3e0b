import KVM
import VMMSys

/// Opens the KVM device: /dev/kvm, or the path in `VMM_KVM_DEVICE` (so tests can show what a
/// user without KVM sees on a machine that has it).
enum KVMDevice {
    static var path: String { HostEnvironment.value("VMM_KVM_DEVICE") ?? "/dev/kvm" }

    static func open() throws -> KVMSystem {
        do {
            return try KVMSystem(path: path)
        } catch {
            throw MachineError("KVM is not available (\(error)); vmm needs read/write access to \(path)")
        }
    }
}
