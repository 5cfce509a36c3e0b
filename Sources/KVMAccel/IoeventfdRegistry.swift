import Memory
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// Two ioeventfds KVM would not hold at once: the kernel refused `refused` (EEXIST) because
/// `holder` already claims that address, length and value on the same bus. `holderOwner` is
/// nil when the holder was not registered through this accelerator.
public struct IoeventfdConflict: Sendable, CustomStringConvertible {
    /// The ioeventfd the kernel refused (absolute address); userspace signals it instead.
    public var refused: MemoryRegionIoeventfd
    /// The region showing the refused ioeventfd's address, and its address space.
    public var refusedOwner: String
    /// The ioeventfd in the way, if this accelerator registered it.
    public var holder: MemoryRegionIoeventfd?
    /// The holder's region and address space, as for `refusedOwner`.
    public var holderOwner: String?
    /// On the port I/O bus rather than MMIO.
    public var pio: Bool

    /// One line naming both ioeventfds and their owners.
    public var description: String {
        let kind = pio ? "PIO" : "MMIO"
        let other = holder.map { "\($0) of \(holderOwner ?? "?")" } ?? "an ioeventfd not registered through this accelerator"
        return "\(kind) ioeventfd \(refused) of \(refusedOwner) conflicts with \(other)"
    }
}

/// What the accelerator's eventfd listeners know beyond the kernel: the ioeventfds the kernel
/// holds for them, with the name of their owner (to report conflicts), and the ones it
/// refused, to retry when what was in the way goes away. QEMU has neither (it aborts on any
/// KVM_IOEVENTFD failure).
///
/// The refusals are bounded by `limit` (one entry per live ioeventfd; the cap guards against
/// a leak): beyond it a refusal is counted in `dropped` and never retried, so its writes keep
/// going through userspace signalling, which stays correct.
final class IoeventfdRegistry: Sendable {
    struct Held {
        var fd: MemoryRegionIoeventfd
        var owner: String
    }

    struct Refusal {
        var fd: MemoryRegionIoeventfd
        var space: AddressSpace
        var pio: Bool
        var errno: Int32
    }

    /// The kernel's bus key: the I/O or MMIO bus, and the address.
    struct BusAddress: Hashable {
        var pio: Bool
        var address: UInt64
    }

    let limit: Int
    private let state = Mutex<(held: [BusAddress: [Held]], refused: [Refusal], dropped: Int, conflicts: [IoeventfdConflict], moreConflicts: Int)>(
        ([:], [], 0, [], 0))
    static let recordedConflicts = 64

    init(limit: Int) { self.limit = limit }

    /// The kernel took `fd`.
    func held(_ fd: MemoryRegionIoeventfd, pio: Bool, owner: String) {
        state.withLock { $0.held[BusAddress(pio: pio, address: fd.start), default: []].append(Held(fd: fd, owner: owner)) }
    }

    /// The kernel no longer holds `fd` (deassigned, or its deassign failed and it is given up).
    func released(_ fd: MemoryRegionIoeventfd, pio: Bool) {
        state.withLock { st in
            let key = BusAddress(pio: pio, address: fd.start)
            guard var list = st.held[key], let i = list.firstIndex(where: { Self.same($0.fd, fd) }) else { return }
            list.remove(at: i)
            st.held[key] = list.isEmpty ? nil : list
        }
    }

    /// The ioeventfds the kernel holds for us that collide with `fd` as the kernel decides it:
    /// same bus and address, and either length 0 on one side or the same length with a
    /// wildcard on one side or the same value. Linux: `ioeventfd_check_collision()`.
    func collisions(with fd: MemoryRegionIoeventfd, pio: Bool) -> [Held] {
        state.withLock { st in
            (st.held[BusAddress(pio: pio, address: fd.start)] ?? []).filter { h in
                h.fd.size == 0 || fd.size == 0
                    || (h.fd.size == fd.size && (!h.fd.matchData || !fd.matchData || h.fd.data == fd.data))
            }
        }
    }

    /// Records a refusal to retry later; false (and counted in `dropped`) past `limit`.
    @discardableResult
    func refused(_ fd: MemoryRegionIoeventfd, in space: AddressSpace, pio: Bool, errno: Int32) -> Bool {
        state.withLock { st in
            guard st.refused.count < limit else {
                st.dropped += 1
                return false
            }
            st.refused.append(Refusal(fd: fd, space: space, pio: pio, errno: errno))
            return true
        }
    }

    /// Forgets a recorded refusal of `fd` (it is being deleted); whether there was one.
    func forgetRefusal(_ fd: MemoryRegionIoeventfd, in space: AddressSpace, pio: Bool) -> Bool {
        state.withLock { st in
            guard let i = st.refused.firstIndex(where: { $0.space === space && $0.pio == pio && Self.same($0.fd, fd) }) else {
                return false
            }
            st.refused.remove(at: i)
            return true
        }
    }

    /// The refusals worth retrying now that the kernel let go of an ioeventfd at `address`:
    /// those refused at the same bus address (EEXIST), and those refused for want of room
    /// (ENOSPC: the kernel's bus was full), removed from the list; the caller records again
    /// those that fail again.
    func takeRetries(after address: BusAddress) -> [Refusal] {
        state.withLock { st in
            var out: [Refusal] = []
            st.refused.removeAll { r in
                let wanted = (r.pio == address.pio && r.fd.start == address.address) || r.errno == ENOSPC
                if wanted { out.append(r) }
                return wanted
            }
            return out
        }
    }

    /// Records a reported conflict (the first `recordedConflicts`; the rest counted).
    func conflict(_ c: IoeventfdConflict) {
        state.withLock { st in
            if st.conflicts.count < Self.recordedConflicts { st.conflicts.append(c) } else { st.moreConflicts += 1 }
        }
    }

    var refusals: [Refusal] { state.withLock { $0.refused } }
    var dropped: Int { state.withLock { $0.dropped } }
    var conflicts: [IoeventfdConflict] { state.withLock { $0.conflicts } }

    /// The same registration (what a delete names).
    static func same(_ a: MemoryRegionIoeventfd, _ b: MemoryRegionIoeventfd) -> Bool {
        a.start == b.start && a.size == b.size && a.matchData == b.matchData && (!a.matchData || a.data == b.data)
            && a.notifier === b.notifier
    }
}
