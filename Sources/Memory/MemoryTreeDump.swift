/// `info mtree` in QEMU's shape: the region tree of each address space, the regions reached
/// only through aliases, (`flat`) each address space's flat view and (`ioeventfds`) its
/// ioeventfds.
/// QEMU: `mtree_info()`.
public enum MemoryTreeDump {
    static func hex(_ v: UInt64) -> String {
        let s = String(v, radix: 16)
        return String(repeating: "0", count: max(0, 16 - s.count)) + s
    }

    static func type(_ mr: MemoryRegion) -> String {
        switch mr.kind {
        case .alias(let t): return type(t)
        case .rom: return "rom"
        case .ram: return "ram"
        case .io, .container: return "i/o"
        }
    }

    static func last(_ start: UInt128, _ size: UInt128) -> UInt64 {
        size == 0 ? UInt64(truncatingIfNeeded: start) : UInt64(truncatingIfNeeded: start + size - 1)
    }

    /// The tree view (`info mtree`). QEMU: `mtree_info()` without `-f` → `mtree_print_mr()`.
    public static func tree(_ system: MemorySystem = .shared) -> String {
        system.lock.lock()
        defer { system.lock.unlock() }
        var out = ""
        var aliased: [MemoryRegion] = []
        for space in system.addressSpaces {
            out += "address-space: \(space.name)\n"
            printRegion(space.root, base: 0, level: 1, into: &out, aliased: &aliased)
            out += "\n"
        }
        var seen = Set<ObjectIdentifier>()
        var k = 0
        while k < aliased.count {
            let mr = aliased[k]
            k += 1
            guard seen.insert(ObjectIdentifier(mr)).inserted else { continue }
            out += "memory-region: \(mr.name)\n"
            printRegion(mr, base: 0, level: 1, into: &out, aliased: &aliased, ignoreAddress: true)
            out += "\n"
        }
        return out
    }

    private static func printRegion(_ mr: MemoryRegion, base: UInt128, level: Int, into out: inout String,
                                    aliased: inout [MemoryRegion], ignoreAddress: Bool = false) {
        let start = base + (ignoreAddress ? 0 : UInt128(mr.addressStorage))
        let indent = String(repeating: " ", count: level * 2)
        let disabled = mr.enabledStorage ? "" : " [disabled]"
        let head = "\(indent)\(hex(UInt64(truncatingIfNeeded: start)))-\(hex(last(start, mr.sizeStorage))) (prio \(mr.priorityStorage), \(type(mr))): "
        if case .alias(let target) = mr.kind {
            let o = UInt128(mr.aliasOffsetStorage)
            out += head + "alias \(mr.name) @\(target.name) \(hex(UInt64(truncatingIfNeeded: o)))-\(hex(last(o, mr.sizeStorage)))\(disabled)\n"
            aliased.append(target)
            return
        }
        out += head + mr.name + (mr.readOnlyStorage && !isROM(mr) ? " [readonly]" : "") + disabled + "\n"
        // QEMU prints children by address, then higher priority first.
        let children = mr.subregionList.enumerated().sorted { a, b in
            if a.element.addressStorage != b.element.addressStorage { return a.element.addressStorage < b.element.addressStorage }
            if a.element.priorityStorage != b.element.priorityStorage { return a.element.priorityStorage > b.element.priorityStorage }
            return a.offset < b.offset
        }
        for (_, sub) in children { printRegion(sub, base: start, level: level + 1, into: &out, aliased: &aliased) }
    }

    private static func isROM(_ mr: MemoryRegion) -> Bool {
        if case .rom = mr.kind { return true }
        return false
    }

    /// The flat views (`info mtree -f`). QEMU: `mtree_info()` with `-f` →
    /// `mtree_print_flatview()`.
    public static func flat(_ system: MemorySystem = .shared) -> String {
        system.lock.lock()
        defer { system.lock.unlock() }
        var out = ""
        for (n, space) in system.addressSpaces.enumerated() {
            out += "FlatView #\(n)\n AS \"\(space.name)\", root: \(space.root.name)\n Root memory region: \(space.root.name)\n"
            let ranges = space.currentMap.ranges
            if ranges.isEmpty { out += "  No rendered FlatView\n" }
            for fr in ranges {
                let at = fr.offsetInRegion == 0 ? "" : " @\(hex(fr.offsetInRegion))"
                let ro = fr.readOnly && !isROM(fr.region) ? " [ROM]" : ""
                out += "  \(hex(fr.start))-\(hex(last(UInt128(fr.start), fr.size))) (prio \(fr.region.priorityStorage), \(type(fr.region))): \(fr.region.name)\(at)\(ro)\n"
            }
            out += "\n"
        }
        return out
    }

    /// Each address space's ioeventfds (`info ioeventfds`): absolute address, size, match,
    /// whether the kernel or userspace signals it (no accelerator, or refused), and for
    /// userspace ones the writes signalled (the kernel does not report its hits). QEMU has no
    /// such command; it is this project's HMP `info ioeventfds` (QMP: `x-query-ioeventfds`).
    public static func ioeventfds(_ system: MemorySystem = .shared) -> String {
        system.lock.lock()
        defer { system.lock.unlock() }
        var out = ""
        for space in system.addressSpaces {
            let fds = space.ioeventfdNotifiers > 0 ? space.ioeventfdList : space.collectIoeventfds()
            out += "address-space: \(space.name) (\(fds.count) ioeventfds)\n"
            let refused = space.refusedIoeventfds
            for fd in fds {
                let user = !space.acceleratorHandlesIoeventfds || refused.contains { $0.isSameEntry(fd) }
                let match = fd.matchData ? "data=0x\(String(fd.data, radix: 16))" : "any"
                let hits = user ? "hits=\(space.counters.eventfdSignals(of: fd.notifier))" : "hits=-"
                out += "  \(hex(fd.start)) size=\(fd.size) \(match) fd=\(fd.notifier.fileDescriptor.rawValue) \(user ? "userspace" : "kernel") \(hits)\n"
            }
        }
        return out
    }
}
