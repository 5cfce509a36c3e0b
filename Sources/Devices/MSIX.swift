import Memory
import Synchronization
import VMMSys

/// Where a device's MSI messages go. The machine implements it with KVM: `connect` routes a
/// vector's message to a GSI and binds an irqfd, so signalling the returned notifier injects
/// the interrupt with no exit and no ioctl. QEMU: `kvm_irqchip_add_msi_route()` +
/// `kvm_irqchip_add_irqfd_notifier_gsi()` (virtio-pci's vector use/release hooks).
///
/// `MSIX` calls all three methods with its own lock held (see `MSIX`, "Lock order"): an
/// implementation may take locks of its own and make system calls, but must never call back
/// into an `MSIX`.
public protocol MSIController: Sendable {
    /// A notifier that delivers (address, data) when set, or nil to fall back to `send`.
    func connect(address: UInt64, data: UInt32) -> EventNotifier?
    /// Undoes `connect`.
    func disconnect(_ notifier: EventNotifier)
    /// Delivers one message now (no irqfd).
    func send(address: UInt64, data: UInt32)
}

/// The MSI-X capability, table and pending-bit array of one function: the table and PBA live
/// in a BAR (`region`: table at 0, PBA at 0x800); entries are programmed by the guest; a masked
/// vector's message is held pending and sent when unmasked. QEMU: hw/pci/msix.c.
///
/// **Concurrency.** Table writes (any vCPU), message-control changes (any vCPU) and `notify`
/// (the I/O thread) may all race. Every one of them reads and changes the vector state *and*
/// reconciles the vector's connection (disconnect the old notifier, connect the new message,
/// store it) inside one critical section of `state`, so no interleaving can lose a connection
/// (its route and irqfd never released) or connect one twice. A notifier is signalled only
/// under the same lock, so it is never signalled after its irqfd was unbound, and a pending
/// message is cleared and delivered in the step that unmasks it: exactly once. This is the
/// serialisation QEMU gets from the BQL around `msix_table_mmio_write()`, `msix_write_config()`
/// and `msix_notify()`.
///
/// **Lock order.** `MSIX.state` → the controller's locks (on the pc machine
/// `KVMMSIController.routes`, then `IRQRouting.state`, which is held across
/// `KVM_SET_GSI_ROUTING`) → the kernel. `controlChanged(reading:)` also takes the caller's
/// config-space lock inside `MSIX.state`. Nothing below `MSIX.state` calls back into `MSIX`,
/// and `MSIX` is never entered with a controller lock held, so no cycle exists.
///
/// **Invariant** (after every public call returns): a vector has a connection exactly when
/// MSI-X is enabled, the function is not masked, the vector is not masked and `connect`
/// succeeded, and the connection carries the vector's current message. QEMU:
/// `msix_handle_mask_update()` firing virtio-pci's `kvm_virtio_pci_vector_use()` /
/// `_release()` (irqfd bound only while unmasked).
public final class MSIX: Sendable {
    /// Where the pending-bit array starts in the region (after the table). QEMU:
    /// MSIX_EXCLUSIVE_BAR_PBA_OFFSET (msix_init_exclusive_bar()).
    public static let pbaOffset: UInt64 = 0x800
    /// Table entries (1 to 64).
    public let vectorCount: Int
    /// The table and PBA (4 KiB), which the owning function maps as a BAR.
    public let region: MemoryRegion
    private let controller: any MSIController

    /// A vector's live route: the notifier `connect` returned for (address, data).
    struct Connection {
        let notifier: EventNotifier
        let address: UInt64
        let data: UInt32
    }

    struct Vector {
        var addressLow: UInt32 = 0, addressHigh: UInt32 = 0, data: UInt32 = 0, control: UInt32 = 1   // masked
        var pending = false
        var connection: Connection?
        var address: UInt64 { UInt64(addressHigh) << 32 | UInt64(addressLow) }
        var masked: Bool { control & 1 != 0 }
    }

    struct State {
        var vectors: [Vector]
        var enabled = false
        var functionMasked = false
        /// Whether vector `i` may fire now. QEMU: `!msix_is_masked()` (with
        /// `msix_function_masked` = disabled or Function Mask).
        func unmasked(_ i: Int) -> Bool { enabled && !functionMasked && !vectors[i].masked }
    }

    private let state: Mutex<State>

    /// A table of `vectors` entries (clamped to 1...64), all masked, MSI-X disabled; messages go to
    /// `controller`; `name` names the region. QEMU: msix_init().
    public init(vectors: Int, controller: any MSIController, name: String) {
        vectorCount = max(1, min(vectors, 64))
        self.controller = controller
        state = Mutex(State(vectors: [Vector](repeating: Vector(), count: max(1, min(vectors, 64)))))
        let owner = RegionOwner<MSIX>()
        region = .io(name: name, size: 0x1000, ops: owner.ops(
            read: { d in { offset, _ in UInt64(d.read(offset)) } },
            write: { d in { offset, value, _ in d.write(offset, UInt32(truncatingIfNeeded: value)) } },
            unbound: 0,
            valid: AccessConstraints(minAccessSize: 4, maxAccessSize: 8),
            implementation: AccessConstraints(minAccessSize: 4, maxAccessSize: 4)))
        owner.set(self)
    }

    /// The capability's bytes (ID 0x11, table in `bar` at 0, PBA at 0x800) and write mask
    /// (only Enable and Function Mask are writable).
    public func capability(bar: UInt8) -> (bytes: [UInt8], writeMask: [UInt8]) {
        let control = UInt16(vectorCount - 1)
        let table = UInt32(bar), pba = UInt32(Self.pbaOffset) | UInt32(bar)
        var b: [UInt8] = [0x11, 0, UInt8(control & 0xff), UInt8(control >> 8)]
        for v in [table, pba] { for i in 0..<4 { b.append(UInt8(truncatingIfNeeded: v >> (8 * UInt32(i)))) } }
        var m = [UInt8](repeating: 0, count: 12)
        m[3] = 0xc0
        return (b, m)
    }

    /// The guest wrote the capability's message control (bit 15 Enable, bit 14 Function Mask),
    /// which now reads `control`. Vectors whose masked state changed are connected or
    /// disconnected, and a pending one that became unmasked is delivered, all in one step.
    /// When two vCPUs write the register at once, prefer `controlChanged(reading:)`: with this
    /// form the value each caller read may reach here in the other order.
    /// QEMU: `msix_write_config()`.
    public func controlChanged(_ control: UInt16) {
        controlChanged(reading: { control })
    }

    /// The same, but `read` (the current message control from config space) is called with
    /// this function's lock held, so whichever caller comes last applies the register's final
    /// value, whatever the order of concurrent writers. `read` must not call into this `MSIX`.
    /// QEMU: `msix_write_config()`.
    ///
    /// Unlike QEMU, clearing Enable releases the connections too (QEMU returns early and keeps
    /// them until the next unmask): a function with MSI-X off holds no GSI routes or irqfds.
    public func controlChanged(reading read: () -> UInt16) {
        state.withLock { s in
            let control = read()
            let enabled = control & 0x8000 != 0, masked = control & 0x4000 != 0
            guard enabled != s.enabled || masked != s.functionMasked else { return }
            s.enabled = enabled
            s.functionMasked = masked
            for i in s.vectors.indices { reconcile(&s, i) }
        }
    }

    /// Whether the function's MSI-X Enable bit is set (the last control write said so).
    public var isEnabled: Bool { state.withLock { $0.enabled } }

    /// Back to the reset state: disabled, every entry zero and masked, nothing pending, every
    /// connection released. The capability's control bits are the caller's (config space).
    /// QEMU: msix_reset().
    public func reset() {
        state.withLock { s in
            for v in s.vectors { if let c = v.connection { controller.disconnect(c.notifier) } }
            s = State(vectors: [Vector](repeating: Vector(), count: vectorCount))
        }
    }

    /// Vectors with a live connection (a notifier from `connect`) — at most one each.
    public var connectedVectors: Int { state.withLock { s in s.vectors.reduce(0) { $0 + ($1.connection == nil ? 0 : 1) } } }

    /// Sends vector `index`'s message, or marks it pending while the vector is masked (MSI-X
    /// disabled and Function Mask count as masked). Any thread. QEMU: `msix_notify()`.
    public func notify(_ index: Int) {
        state.withLock { s in
            guard s.vectors.indices.contains(index) else { return }
            if s.unmasked(index) { deliver(s.vectors[index]) } else { s.vectors[index].pending = true }
        }
    }

    /// Called with `state` held: through the irqfd when connected, else one KVM_SIGNAL_MSI.
    private func deliver(_ v: Vector) {
        if let c = v.connection { c.notifier.set() } else { controller.send(address: v.address, data: v.data) }
    }

    /// Called with `state` held after anything about vector `i` changed: brings its connection
    /// in line with the invariant (a connection that already carries the current message is
    /// kept: no routing change for a rewrite of the same value), then delivers a pending
    /// message if the vector can fire. QEMU: `msix_handle_mask_update()`.
    private func reconcile(_ s: inout State, _ i: Int) {
        let v = s.vectors[i]
        let live = s.unmasked(i)
        if let c = v.connection, !live || c.address != v.address || c.data != v.data {
            controller.disconnect(c.notifier)
            s.vectors[i].connection = nil
        }
        if live, s.vectors[i].connection == nil, let n = controller.connect(address: v.address, data: v.data) {
            s.vectors[i].connection = Connection(notifier: n, address: v.address, data: v.data)
        }
        if live && s.vectors[i].pending {
            s.vectors[i].pending = false
            deliver(s.vectors[i])
        }
    }

    private func read(_ offset: UInt64) -> UInt32 {
        state.withLock { s in
            if offset >= Self.pbaOffset {
                let word = Int((offset - Self.pbaOffset) / 4)
                var bits: UInt32 = 0
                for i in 0..<32 where word * 32 + i < s.vectors.count && s.vectors[word * 32 + i].pending { bits |= 1 << UInt32(i) }
                return bits
            }
            let i = Int(offset / 16)
            guard s.vectors.indices.contains(i) else { return 0 }
            let v = s.vectors[i]
            switch offset % 16 / 4 {
            case 0: return v.addressLow
            case 1: return v.addressHigh
            case 2: return v.data
            default: return v.control
            }
        }
    }

    /// A table write and the reconciliation it calls for, in one step. Unlike QEMU, a new
    /// address or data written while the vector is unmasked takes effect at once (QEMU keeps
    /// the irqfd route of the last unmask until the next one); the PCI spec leaves that case
    /// undefined. QEMU: `msix_table_mmio_write()`.
    private func write(_ offset: UInt64, _ value: UInt32) {
        guard offset < Self.pbaOffset else { return }      // the PBA is read-only
        let i = Int(offset / 16)
        state.withLock { s in
            guard s.vectors.indices.contains(i) else { return }
            switch offset % 16 / 4 {
            case 0: s.vectors[i].addressLow = value & ~3
            case 1: s.vectors[i].addressHigh = value
            case 2: s.vectors[i].data = value
            default: s.vectors[i].control = value & 1
            }
            reconcile(&s, i)
        }
    }
}
