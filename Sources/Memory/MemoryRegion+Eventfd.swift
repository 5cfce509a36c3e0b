import VMMSys

/// A device model's misuse of the memory API, thrown instead of taking the process down.
public enum MemoryError: Error, Equatable, CustomStringConvertible {
    /// ``MemoryRegion/delEventfd(offset:size:matchData:data:notifier:)`` named an ioeventfd the
    /// region does not have. QEMU asserts (`memory_region_del_eventfd()`).
    case noSuchIoeventfd(region: String, offset: UInt64, size: UInt64)
    /// An ioeventfd no kernel could take: a size other than 0, 1, 2, 4 or 8, or a zero size
    /// that matches data. QEMU registers these and aborts when KVM refuses them
    /// (`kvm_mem_ioeventfd_add()`).
    case invalidIoeventfd(region: String, reason: String)

    /// One line naming the region and what was wrong.
    public var description: String {
        switch self {
        case .noSuchIoeventfd(let r, let o, let s):
            return "memory region '\(r)': no ioeventfd at offset 0x\(String(o, radix: 16)) size \(s) to delete"
        case .invalidIoeventfd(let r, let why):
            return "memory region '\(r)': invalid ioeventfd: \(why)"
        }
    }
}

extension MemoryRegion {
    /// Asks for writes of `size` bytes (0 = any size) at `offset` — with exactly `data` when
    /// `matchData` — to signal `notifier` instead of reaching the device. An accelerator may
    /// take it in the kernel; otherwise dispatch signals it (the device sees no difference).
    /// `data` is given in guest order and stored in the device's. A disabled region's
    /// ioeventfds take effect when it is enabled.
    /// - Throws: ``MemoryError/invalidIoeventfd(region:reason:)`` for a size other than 0, 1,
    ///   2, 4 or 8, or a zero size with `matchData`; nothing is registered.
    /// QEMU: `memory_region_add_eventfd()`.
    public func addEventfd(offset: UInt64, size: Int, matchData: Bool, data: UInt64, notifier: EventNotifier) throws(MemoryError) {
        let fd = try makeIoeventfd(offset: offset, size: size, matchData: matchData, data: data, notifier: notifier)
        change(.ioeventfds) {
            let i = ioeventfdList.firstIndex { fd.isOrderedBefore($0) } ?? ioeventfdList.endIndex
            ioeventfdList.insert(fd, at: i)
            publishEventfds()
            system?.ioeventfdChangedRegions[ObjectIdentifier(self)] = self
            return enabledStorage
        }
    }

    /// Removes the first ioeventfd equal to the given one (size 0 on either side matches any
    /// size), with the arguments given to ``addEventfd(offset:size:matchData:data:notifier:)``.
    /// - Throws: ``MemoryError/noSuchIoeventfd(region:offset:size:)`` when the region has no
    ///   such ioeventfd; ``MemoryError/invalidIoeventfd(region:reason:)`` as for adding.
    /// QEMU: `memory_region_del_eventfd()`.
    public func delEventfd(offset: UInt64, size: Int, matchData: Bool, data: UInt64, notifier: EventNotifier) throws(MemoryError) {
        let fd = try makeIoeventfd(offset: offset, size: size, matchData: matchData, data: data, notifier: notifier)
        var found = false
        change(.ioeventfds) {
            guard let i = ioeventfdList.firstIndex(where: { fd.matches($0) }) else { return false }
            ioeventfdList.remove(at: i)
            publishEventfds()
            system?.ioeventfdChangedRegions[ObjectIdentifier(self)] = self
            found = true
            return enabledStorage
        }
        guard found else { throw .noSuchIoeventfd(region: name, offset: offset, size: UInt64(size)) }
    }

    private func makeIoeventfd(offset: UInt64, size: Int, matchData: Bool, data: UInt64, notifier: EventNotifier) throws(MemoryError) -> MemoryRegionIoeventfd {
        guard [0, 1, 2, 4, 8].contains(size) else {
            throw .invalidIoeventfd(region: name, reason: "size \(size) is not 0, 1, 2, 4 or 8")
        }
        guard !(size == 0 && matchData) else {
            throw .invalidIoeventfd(region: name, reason: "a zero-length ioeventfd cannot match data")
        }
        var value = data
        if size != 0 {
            if size < 8 { value &= (UInt64(1) << (8 * UInt64(size))) - 1 }
            if case .io(let ops) = kind { value = adjustEndianness(value, size: size, ops.endianness) }
        }
        return MemoryRegionIoeventfd(start: offset, size: UInt64(size), matchData: matchData, data: value, notifier: notifier)
    }

    /// Refreshes the copy dispatch reads (called with the lock held).
    private func publishEventfds() {
        let list = ioeventfdList
        eventfdSnapshot.withLock { $0 = list }
        hasEventfds.store(!list.isEmpty, ordering: .releasing)
    }

    /// Signals the first of this region's ioeventfds a write matches. Used when no accelerator
    /// took them. QEMU: `memory_region_dispatch_write_eventfds()`.
    /// Returns the notifier it signalled.
    func signalMatchingEventfd(offset: UInt64, value: UInt64, size: Int) -> EventNotifier? {
        guard hasEventfds.load(ordering: .acquiring) else { return nil }
        let hit = eventfdSnapshot.withLock { list -> EventNotifier? in
            for fd in list where fd.start == offset {
                let probe = MemoryRegionIoeventfd(start: offset, size: UInt64(size), matchData: fd.matchData, data: value, notifier: fd.notifier)
                if probe.matches(fd) { return fd.notifier }
            }
            return nil
        }
        hit?.set()
        return hit
    }
}
