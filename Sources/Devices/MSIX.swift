import Memory
import Synchronization
import VMMSys

/// Where a device's MSI messages go. The machine implements it with KVM: `connect` routes a
/// vector's message to a GSI and binds an irqfd, so signalling the returned notifier injects
/// the interrupt with no exit and no ioctl. QEMU: `kvm_irqchip_add_msi_route()` +
/// `kvm_irqchip_add_irqfd_notifier_gsi()` (virtio-pci's vector use/release hooks).
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
public final class MSIX: Sendable {
    public static let pbaOffset: UInt64 = 0x800
    public let vectorCount: Int
    public let region: MemoryRegion
    private let controller: any MSIController

    struct Vector {
        var addressLow: UInt32 = 0, addressHigh: UInt32 = 0, data: UInt32 = 0, control: UInt32 = 1   // masked
        var pending = false
        var notifier: EventNotifier?
        var address: UInt64 { UInt64(addressHigh) << 32 | UInt64(addressLow) }
        var masked: Bool { control & 1 != 0 }
    }

    private let state: Mutex<(vectors: [Vector], enabled: Bool, functionMasked: Bool)>

    public init(vectors: Int, controller: any MSIController, name: String) {
        vectorCount = max(1, min(vectors, 64))
        self.controller = controller
        state = Mutex(([Vector](repeating: Vector(), count: max(1, min(vectors, 64))), false, false))
        let ref = DeviceRef<MSIX>()
        region = .io(name: name, size: 0x1000, ops: MemoryRegionOps(
            read: { offset, size in UInt64(ref.value?.read(offset) ?? 0) },
            write: { offset, value, size in ref.value?.write(offset, UInt32(truncatingIfNeeded: value)) },
            valid: AccessConstraints(minAccessSize: 4, maxAccessSize: 8),
            implementation: AccessConstraints(minAccessSize: 4, maxAccessSize: 4)))
        ref.set(self)
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

    /// The guest wrote the capability's message control (bit 15 enable, bit 14 function mask).
    public func controlChanged(_ control: UInt16) {
        let changed = state.withLock { s -> Bool in
            let enabled = control & 0x8000 != 0, masked = control & 0x4000 != 0
            defer { s.enabled = enabled; s.functionMasked = masked }
            return enabled != s.enabled || masked != s.functionMasked
        }
        if changed { refreshAll() }
    }

    public var isEnabled: Bool { state.withLock { $0.enabled } }

    /// Sends vector `index`'s message (or marks it pending while masked). Any thread.
    public func notify(_ index: Int) {
        let action = state.withLock { s -> (EventNotifier?, (UInt64, UInt32)?) in
            guard s.enabled, s.vectors.indices.contains(index) else { return (nil, nil) }
            if s.functionMasked || s.vectors[index].masked {
                s.vectors[index].pending = true
                return (nil, nil)
            }
            let v = s.vectors[index]
            return v.notifier.map { ($0, nil) } ?? (nil, (v.address, v.data))
        }
        if let n = action.0 { n.set() } else if let m = action.1 { controller.send(address: m.0, data: m.1) }
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

    private func write(_ offset: UInt64, _ value: UInt32) {
        guard offset < Self.pbaOffset else { return }      // the PBA is read-only
        let i = Int(offset / 16)
        let inRange = state.withLock { s -> Bool in
            guard s.vectors.indices.contains(i) else { return false }
            switch offset % 16 / 4 {
            case 0: s.vectors[i].addressLow = value & ~3
            case 1: s.vectors[i].addressHigh = value
            case 2: s.vectors[i].data = value
            default: s.vectors[i].control = value & 1
            }
            return true
        }
        if inRange { refresh(i) }
    }

    private func refreshAll() { for i in 0..<vectorCount { refresh(i) } }

    /// Re-routes vector `i` after a change: disconnect the old irqfd, connect the new message
    /// if the vector can fire, and deliver a pending message that became unmasked.
    private func refresh(_ i: Int) {
        let (old, want, pendingNow) = state.withLock { s -> (EventNotifier?, (UInt64, UInt32)?, Bool) in
            let v = s.vectors[i]
            let live = s.enabled && !v.masked
            return (v.notifier, live ? (v.address, v.data) : nil, live && !s.functionMasked && v.pending)
        }
        if let old { controller.disconnect(old) }
        let new = want.flatMap { controller.connect(address: $0.0, data: $0.1) }
        state.withLock { s in
            s.vectors[i].notifier = new
            if pendingNow { s.vectors[i].pending = false }
        }
        if pendingNow {
            if let new { new.set() } else if let want { controller.send(address: want.0, data: want.1) }
        }
    }
}
