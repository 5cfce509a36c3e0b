import Synchronization
import Testing
import VMMSys
@testable import Memory

/// A listener that records every callback as a line, and keeps the map, ioeventfd set and
/// coalesced ranges it was told about, so tests can compare what listeners believe with what
/// is true. It fails the running test (`Issue.record`) on a callback no correct memory API
/// sends: a region add at an address it already holds a range for, a region delete (or log
/// start/stop) of a range it was never given or that differs from the one it holds, an
/// eventfd delete of an ioeventfd it doesn't hold, a coalesced delete of a range it doesn't
/// hold.
final class RecordingListener: MemoryListener, @unchecked Sendable {
    // @unchecked: immutable configuration; mutable state is in the Mutex.
    let priority: Int
    let handlesEventfds: Bool
    var handlesRegionNop: Bool { true }
    let tag: String
    let log: CallLog
    /// Called from `logSync` (an accelerator would pull its log into the region here).
    let onLogSync: (@Sendable (MemoryRegionSection) -> Void)?
    private let state = Mutex<State>(State())

    struct Section: Equatable {
        var region: ObjectIdentifier
        var size: UInt128
        var offset: UInt64
        var readOnly: Bool
    }

    struct State {
        var sections: [UInt64: Section] = [:]
        var eventfds: [MemoryRegionIoeventfd] = []
        var coalesced: [String] = []
    }

    init(_ tag: String, priority: Int = 0, eventfds: Bool = true, log: CallLog = CallLog(),
         onLogSync: (@Sendable (MemoryRegionSection) -> Void)? = nil) {
        self.tag = tag
        self.priority = priority
        self.handlesEventfds = eventfds
        self.log = log
        self.onLogSync = onLogSync
    }

    var eventfds: [MemoryRegionIoeventfd] { state.withLock { $0.eventfds } }
    var sectionCount: Int { state.withLock { $0.sections.count } }
    /// Coalesced ranges held, as "0xADDR+0xLEN", sorted.
    var coalesced: [String] { state.withLock { $0.coalesced.sorted() } }

    /// The ranges this listener believes are mapped, sorted by address.
    var believedRanges: [(start: UInt64, size: UInt128, region: ObjectIdentifier, offset: UInt64, readOnly: Bool)] {
        state.withLock { s in
            s.sections.map { (start: $0.key, size: $0.value.size, region: $0.value.region, offset: $0.value.offset, readOnly: $0.value.readOnly) }
                .sorted { $0.start < $1.start }
        }
    }

    private static func section(_ s: MemoryRegionSection) -> Section {
        Section(region: ObjectIdentifier(s.region), size: s.size, offset: s.offsetWithinRegion, readOnly: s.readOnly)
    }

    /// Whether `s` is exactly a range this listener holds; records an issue if not.
    private func expectHeld(_ s: MemoryRegionSection, _ what: String) -> Bool {
        let held = state.withLock { $0.sections[s.offsetWithinAddressSpace] }
        guard held == Self.section(s) else {
            Issue.record("\(tag): \(what) of \(s.region.name)@\(hx(s.offsetWithinAddressSpace)), a range it does not hold")
            return false
        }
        return true
    }

    func begin() { log.add("\(tag).begin") }
    func commit() { log.add("\(tag).commit") }
    func regionAdd(_ s: MemoryRegionSection) {
        log.add("\(tag).add \(s.region.name)@\(hx(s.offsetWithinAddressSpace))")
        let duplicate = state.withLock { st -> Bool in
            let had = st.sections[s.offsetWithinAddressSpace] != nil
            st.sections[s.offsetWithinAddressSpace] = Self.section(s)
            return had
        }
        if duplicate { Issue.record("\(tag): region add at \(hx(s.offsetWithinAddressSpace)), which it already holds") }
    }
    func regionDel(_ s: MemoryRegionSection) {
        log.add("\(tag).del \(s.region.name)@\(hx(s.offsetWithinAddressSpace))")
        guard expectHeld(s, "region delete") else { return }
        state.withLock { _ = $0.sections.removeValue(forKey: s.offsetWithinAddressSpace) }
    }
    func regionNop(_ s: MemoryRegionSection) {
        log.add("\(tag).nop \(s.region.name)@\(hx(s.offsetWithinAddressSpace))")
        _ = expectHeld(s, "region nop")
    }
    func logStart(_ s: MemoryRegionSection, old: UInt8, new: UInt8) {
        log.add("\(tag).log_start \(s.region.name)@\(hx(s.offsetWithinAddressSpace)) \(old)->\(new)")
        _ = expectHeld(s, "log start")
    }
    func logStop(_ s: MemoryRegionSection, old: UInt8, new: UInt8) {
        log.add("\(tag).log_stop \(s.region.name)@\(hx(s.offsetWithinAddressSpace)) \(old)->\(new)")
        _ = expectHeld(s, "log stop")
    }
    func logSync(_ s: MemoryRegionSection) {
        log.add("\(tag).log_sync \(s.region.name)@\(hx(s.offsetWithinAddressSpace))")
        _ = expectHeld(s, "log sync")
        onLogSync?(s)
    }
    func logClear(_ s: MemoryRegionSection) {
        log.add("\(tag).log_clear \(s.region.name)@\(hx(s.offsetWithinAddressSpace))+\(hx(UInt64(s.size))) @\(hx(s.offsetWithinRegion))")
    }
    func logGlobalStart() { log.add("\(tag).log_global_start") }
    func logGlobalStop() { log.add("\(tag).log_global_stop") }
    func eventfdAdd(_ fd: MemoryRegionIoeventfd, in space: AddressSpace) {
        log.add("\(tag).eventfd_add \(hx(fd.start))/\(fd.size)")
        state.withLock { $0.eventfds.append(fd) }
    }
    func eventfdDel(_ fd: MemoryRegionIoeventfd, in space: AddressSpace) {
        log.add("\(tag).eventfd_del \(hx(fd.start))/\(fd.size)")
        let known = state.withLock { s -> Bool in
            guard let i = s.eventfds.firstIndex(where: { $0.isSameEntry(fd) }) else { return false }
            s.eventfds.remove(at: i)
            return true
        }
        if !known { Issue.record("\(tag): eventfd delete of \(fd), which it does not hold") }
    }
    func coalescedIOAdd(_ s: MemoryRegionSection, address: UInt64, length: UInt64) {
        let key = "\(hx(address))+\(hx(length))"
        log.add("\(tag).coalesced_add \(s.region.name) \(key)")
        _ = expectHeld(s, "coalesced add")
        state.withLock { $0.coalesced.append(key) }
    }
    func coalescedIODel(_ s: MemoryRegionSection, address: UInt64, length: UInt64) {
        let key = "\(hx(address))+\(hx(length))"
        log.add("\(tag).coalesced_del \(s.region.name) \(key)")
        _ = expectHeld(s, "coalesced delete")
        let known = state.withLock { st -> Bool in
            guard let i = st.coalesced.firstIndex(of: key) else { return false }
            st.coalesced.remove(at: i)
            return true
        }
        if !known { Issue.record("\(tag): coalesced delete of \(key), which it does not hold") }
    }
}

/// Callback lines from one or more listeners, in call order.
final class CallLog: Sendable {
    private let lines = Mutex<[String]>([])
    func add(_ s: String) { lines.withLock { $0.append(s) } }
    var all: [String] { lines.withLock { $0 } }
    func clear() { lines.withLock { $0.removeAll() } }
    func matching(_ prefix: String) -> [String] { all.filter { $0.contains(prefix) } }
}

func hx(_ v: UInt64) -> String { "0x" + String(v, radix: 16) }

/// An I/O region whose callbacks do nothing (for topology tests).
func dummyIO(_ name: String, _ size: UInt128) -> MemoryRegion {
    MemoryRegion.io(name: name, size: size, ops: MemoryRegionOps(read: { _, _ in 0 }, write: { _, _, _ in }))
}

/// Records accesses a device region receives.
final class AccessRecorder: Sendable {
    private let entries = Mutex<[String]>([])
    private let backing = Mutex<[UInt64: UInt8]>([:])
    func add(_ s: String) { entries.withLock { $0.append(s) } }
    var all: [String] { entries.withLock { $0 } }
    func clear() { entries.withLock { $0.removeAll() } }

    /// Ops over byte-addressed storage with the given constraints, logging each call.
    func ops(valid: AccessConstraints, impl: AccessConstraints, endianness: Endianness = .little) -> MemoryRegionOps {
        MemoryRegionOps(
            read: { [self] off, size in
                add("r \(off) \(size)")
                return backing.withLock { b in
                    var v: UInt64 = 0
                    for i in 0..<size { v |= UInt64(b[off + UInt64(i)] ?? UInt8(truncatingIfNeeded: off + UInt64(i) + 0x10)) << (8 * UInt64(i)) }
                    return v
                }
            },
            write: { [self] off, value, size in
                add("w \(off) \(size) \(hx(value))")
                backing.withLock { b in for i in 0..<size { b[off + UInt64(i)] = UInt8(truncatingIfNeeded: value >> (8 * UInt64(i))) } }
            },
            endianness: endianness, valid: valid, implementation: impl)
    }
}
