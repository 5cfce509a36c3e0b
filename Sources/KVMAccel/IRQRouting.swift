import KVM
import Synchronization
import VMMSys

/// The GSI routing table. `KVM_SET_GSI_ROUTING` replaces the whole table, so the default PC
/// routes (PIC pins and IOAPIC pins, as the kernel installs them with the irqchip) are kept
/// alongside the MSI routes added here. QEMU: `kvm_pc_setup_irq_routing()` + `kvm_irqchip_*`.
final class IRQRouting: Sendable {
    private let vm: VirtualMachine
    private let state = Mutex<[UInt32: GSIRoute]>([:])
    /// MSI routes use GSIs from here up, the lowest free one first (so a guest that keeps
    /// re-programming vectors never runs the table out).
    static let firstMSIGSI: UInt32 = 24

    init(vm: VirtualMachine) { self.vm = vm }

    /// The routes KVM_CREATE_IRQCHIP sets up on x86: GSI 0–15 to both PICs and the IOAPIC
    /// (GSI 0 to IOAPIC pin 2, the timer override), GSI 16–23 to the IOAPIC.
    static var defaultRoutes: [GSIRoute] {
        var r: [GSIRoute] = []
        for gsi: UInt32 in 0..<16 where gsi != 2 {
            r.append(.irqchip(gsi: gsi, chip: gsi < 8 ? 0 : 1, pin: gsi % 8))
        }
        for gsi: UInt32 in 0..<24 {
            r.append(.irqchip(gsi: gsi, chip: 2, pin: gsi == 0 ? 2 : gsi))
        }
        return r
    }

    func addMSI(address: UInt64, data: UInt32) throws(SystemError) -> UInt32 {
        let (gsi, table) = state.withLock { msi -> (UInt32, [GSIRoute]) in
            var gsi = Self.firstMSIGSI
            while msi[gsi] != nil { gsi += 1 }
            msi[gsi] = .msi(gsi: gsi, addressLo: UInt32(truncatingIfNeeded: address),
                            addressHi: UInt32(truncatingIfNeeded: address >> 32), data: data)
            return (gsi, Self.defaultRoutes + msi.keys.sorted().compactMap { msi[$0] })
        }
        try vm.setGSIRouting(table)
        return gsi
    }

    func remove(gsi: UInt32) throws(SystemError) {
        let table = state.withLock { msi -> [GSIRoute] in
            msi[gsi] = nil
            return Self.defaultRoutes + msi.keys.sorted().compactMap { msi[$0] }
        }
        try vm.setGSIRouting(table)
    }
}
