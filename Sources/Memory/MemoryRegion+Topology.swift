import VMMSys

/// Changing the tree. Each method is one transaction (nested inside any open one), and marks
/// the topology dirty only when the change can be visible, exactly as QEMU does.
extension MemoryRegion {
    /// What a change may affect: the rendered topology, or only ioeventfds.
    enum ChangeKind { case topology, ioeventfds }

    /// Runs `body` under the region's lock inside a transaction of its memory system; when
    /// `body` returns true the change may be visible and marks `kind` pending. Unbound regions
    /// just change.
    func change(_ kind: ChangeKind, _ body: () -> Bool) {
        guard let system else {
            MemoryRegion.unboundLock.lock()
            defer { MemoryRegion.unboundLock.unlock() }
            _ = body()
            return
        }
        system.withTransaction {
            guard body() else { return }
            switch kind {
            case .topology: system.updatePending = true
            case .ioeventfds: system.ioeventfdUpdatePending = true
            }
        }
    }

    /// Maps `subregion` at `offset` inside this region with `priority`. Among overlapping
    /// siblings the higher priority wins; at equal priority the one added last wins.
    /// QEMU: `memory_region_add_subregion_overlap()` (priority 0: `memory_region_add_subregion()`).
    public func addSubregion(_ subregion: MemoryRegion, at offset: UInt64, priority: Int32 = 0) {
        if let system { subregion.bind(to: system) } else if let s = subregion.system { bind(to: s) }
        change(.topology) {
            guard subregion.containerStorage == nil, subregion !== self else {
                topologyMisuseLog.log({ memoryLogger.error("\($0)") }) { "memory region '\(subregion.name)' is already mapped; not added to '\(name)'" }
                return false
            }
            subregion.containerStorage = self
            subregion.addressStorage = offset
            subregion.priorityStorage = priority
            insertOrdered(subregion)
            return enabledStorage && subregion.enabledStorage
        }
    }

    /// Places `subregion` before every sibling of lower or equal priority in QEMU's order: in
    /// the reversed stack, after every sibling of lower or equal priority (a binary search;
    /// an append when the priorities are equal).
    private func insertOrdered(_ subregion: MemoryRegion) {
        let p = subregion.priorityStorage
        if subregionStack.last.map({ $0.priorityStorage <= p }) ?? true {
            subregionStack.append(subregion)
            return
        }
        var lo = 0, hi = subregionStack.count
        while lo < hi {
            let mid = (lo + hi) / 2
            if subregionStack[mid].priorityStorage <= p { lo = mid + 1 } else { hi = mid }
        }
        subregionStack.insert(subregion, at: lo)
    }

    /// Unmaps `subregion`. QEMU: `memory_region_del_subregion()`.
    public func removeSubregion(_ subregion: MemoryRegion) {
        change(.topology) {
            guard subregion.containerStorage === self,
                  let i = subregionStack.lastIndex(where: { $0 === subregion }) else {
                topologyMisuseLog.log({ memoryLogger.error("\($0)") }) { "memory region '\(subregion.name)' is not a subregion of '\(name)'" }
                return false
            }
            subregionStack.remove(at: i)
            subregion.containerStorage = nil
            return enabledStorage && subregion.enabledStorage
        }
    }

    /// Shows or hides the region (and its subtree). QEMU: `memory_region_set_enabled()`.
    public func setEnabled(_ enabled: Bool) {
        change(.topology) {
            guard enabled != enabledStorage else { return false }
            enabledStorage = enabled
            return true
        }
    }

    /// Moves the region within its container; it is re-inserted as the newest among siblings
    /// of its priority. QEMU: `memory_region_set_address()`.
    public func setAddress(_ address: UInt64) {
        change(.topology) {
            guard address != addressStorage else { return false }
            return reinsert { addressStorage = address }
        }
    }

    /// Changes the region's priority among its siblings (re-inserting it as QEMU re-adds).
    public func setPriority(_ priority: Int32) {
        change(.topology) {
            guard priority != priorityStorage else { return false }
            return reinsert { priorityStorage = priority }
        }
    }

    private func reinsert(_ change: () -> Void) -> Bool {
        guard let c = containerStorage, let i = c.subregionStack.lastIndex(where: { $0 === self }) else {
            change()
            return false
        }
        c.subregionStack.remove(at: i)
        change()
        c.insertOrdered(self)
        return c.enabledStorage && enabledStorage
    }

    /// Resizes the region. QEMU: `memory_region_set_size()`.
    public func setSize(_ size: UInt128) {
        change(.topology) {
            guard size != sizeStorage else { return false }
            sizeStorage = size
            return true
        }
    }

    /// Moves an alias's window within its target. QEMU: `memory_region_set_alias_offset()`.
    public func setAliasOffset(_ offset: UInt64) {
        change(.topology) {
            guard offset != aliasOffsetStorage else { return false }
            aliasOffsetStorage = offset
            return enabledStorage
        }
    }

    /// Makes the region read-only to the guest (or writable again). QEMU: `memory_region_set_readonly()`.
    public func setReadOnly(_ readOnly: Bool) {
        change(.topology) {
            guard readOnly != readOnlyStorage else { return false }
            readOnlyStorage = readOnly
            return enabledStorage
        }
    }

    /// Turns dirty logging for `client` bits on or off (listeners get log start/stop).
    /// QEMU: `memory_region_set_log()`.
    package func setDirtyLogging(_ on: Bool, clientMask: UInt8 = 1) {
        change(.topology) {
            let new = on ? dirtyLogMaskStorage | clientMask : dirtyLogMaskStorage & ~clientMask
            guard new != dirtyLogMaskStorage else { return false }
            dirtyLogMaskStorage = new
            return enabledStorage
        }
    }
}

/// Topology misuse is a device-model bug (QEMU asserts), but device code runs on guest
/// register writes (a BAR moved, a test started), so a bug there must not let a guest flood
/// the log: these lines are rate-limited.
private let topologyMisuseLog = RateLimitedLog()
