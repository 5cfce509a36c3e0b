import KVM
import Synchronization
import VMMSys
#if canImport(Glibc)
import Glibc
#endif

/// The GSI routing table. `KVM_SET_GSI_ROUTING` replaces the whole table, so the default PC
/// routes (PIC pins and IOAPIC pins, as the kernel installs them with the irqchip) are kept
/// alongside the MSI routes added here. QEMU: `kvm_pc_setup_irq_routing()` + `kvm_irqchip_*`.
///
/// The table is built *and* handed to the kernel under one lock, so concurrent callers apply
/// their tables in the order they built them: the kernel always ends with the table the
/// bookkeeping describes (QEMU gets the same from the BQL around `kvm_irqchip_commit_routes()`).
/// The ioctl can take a while (the kernel waits for an SRCU grace period), which only delays
/// other route changes; nothing that delivers interrupts takes this lock.
final class IRQRouting: Sendable {
    private let vm: VirtualMachine
    private let state = Mutex<[UInt32: GSIRoute]>([:])
    /// MSI routes use GSIs from here up, the lowest free one first (so a guest that keeps
    /// re-programming vectors never runs the table out).
    static let firstMSIGSI: UInt32 = 24
    /// At most this many MSI routes at once (64 vectors for each of 16 functions); beyond it
    /// `addMSI` fails with ENOSPC and the caller falls back to KVM_SIGNAL_MSI. Well inside the
    /// kernel's own limit (`KVM_MAX_IRQ_ROUTES`, 4096 entries and GSIs), so a leak elsewhere
    /// shows up as a refused route, never as a table the kernel rejects.
    static let maxMSIRoutes = 1024

    init(vm: VirtualMachine) { self.vm = vm }

    /// The routes KVM_CREATE_IRQCHIP sets up on x86: GSI 0–15 to both PICs and the IOAPIC
    /// (GSI 0 to IOAPIC pin 2, the timer override), GSI 16–23 to the IOAPIC.
    static let defaultRoutes: [GSIRoute] = {
        var r: [GSIRoute] = []
        for gsi: UInt32 in 0..<16 where gsi != 2 {
            r.append(.irqchip(gsi: gsi, chip: gsi < 8 ? 0 : 1, pin: gsi % 8))
        }
        for gsi: UInt32 in 0..<24 {
            r.append(.irqchip(gsi: gsi, chip: 2, pin: gsi == 0 ? 2 : gsi))
        }
        return r
    }()

    private static func table(_ msi: [UInt32: GSIRoute]) -> [GSIRoute] {
        defaultRoutes + msi.keys.sorted().compactMap { msi[$0] }
    }

    /// Routes the lowest free GSI to the MSI message and applies the table; on failure the
    /// GSI stays free. QEMU: `kvm_irqchip_add_msi_route()` + `kvm_irqchip_commit_routes()`.
    func addMSI(address: UInt64, data: UInt32) throws(SystemError) -> UInt32 {
        try state.withLock { msi throws(SystemError) -> UInt32 in
            guard msi.count < Self.maxMSIRoutes else {
                throw SystemError(operation: "MSI route", arguments: "\(msi.count) routes in use (limit \(Self.maxMSIRoutes))", errno: ENOSPC)
            }
            var gsi = Self.firstMSIGSI
            while msi[gsi] != nil { gsi += 1 }          // ends within maxMSIRoutes steps
            msi[gsi] = .msi(gsi: gsi, addressLo: UInt32(truncatingIfNeeded: address),
                            addressHi: UInt32(truncatingIfNeeded: address >> 32), data: data)
            do throws(SystemError) {
                try vm.setGSIRouting(Self.table(msi))
            } catch {
                msi[gsi] = nil
                throw error
            }
            return gsi
        }
    }

    /// Frees `gsi` (nothing to do if it is not an MSI route here) and applies the table. The
    /// GSI is free afterwards even if the ioctl fails: its irqfd is already gone, and the next
    /// successful table replaces the stale kernel entry. QEMU: `kvm_irqchip_release_virq()`.
    func remove(gsi: UInt32) throws(SystemError) {
        try state.withLock { msi throws(SystemError) in
            guard msi.removeValue(forKey: gsi) != nil else { return }
            try vm.setGSIRouting(Self.table(msi))
        }
    }

    /// The MSI routes in use, by GSI: what the kernel's table holds after every successful update.
    var msiRoutes: [UInt32: GSIRoute] { state.withLock { $0 } }
}
