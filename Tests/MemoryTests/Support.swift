import Synchronization
import VMMSys
@testable import Memory

/// A listener that records every callback as a line, and keeps the map and ioeventfd set it
/// was told about, so tests can compare what listeners believe with what is true.
final class RecordingListener: MemoryListener, @unchecked Sendable {
    let priority: Int
    let handlesEventfds: Bool
    let tag: String
    let log: CallLog
    private let state = Mutex<State>(State())

    struct State {
        var sections: [UInt64: (region: ObjectIdentifier, size: UInt128, offset: UInt64, readOnly: Bool)] = [:]
        var eventfds: [MemoryRegionIoeventfd] = []
    }

    init(_ tag: String, priority: Int = 0, eventfds: Bool = true, log: CallLog = CallLog()) {
        self.tag = tag
        self.priority = priority
        self.handlesEventfds = eventfds
        self.log = log
    }

    var eventfds: [MemoryRegionIoeventfd] { state.withLock { $0.eventfds } }
    var sectionCount: Int { state.withLock { $0.sections.count } }

    /// The ranges this listener believes are mapped, sorted by address.
    var believedRanges: [(start: UInt64, size: UInt128, region: ObjectIdentifier, offset: UInt64, readOnly: Bool)] {
        state.withLock { s in
            s.sections.map { (start: $0.key, size: $0.value.size, region: $0.value.region, offset: $0.value.offset, readOnly: $0.value.readOnly) }
                .sorted { $0.start < $1.start }
        }
    }

    func begin() { log.add("\(tag).begin") }
    func commit() { log.add("\(tag).commit") }
    func regionAdd(_ s: MemoryRegionSection) {
        log.add("\(tag).add \(s.region.name)@\(hx(s.offsetWithinAddressSpace))")
        state.withLock {
            $0.sections[s.offsetWithinAddressSpace] = (ObjectIdentifier(s.region), s.size, s.offsetWithinRegion, s.readOnly)
        }
    }
    func regionDel(_ s: MemoryRegionSection) {
        log.add("\(tag).del \(s.region.name)@\(hx(s.offsetWithinAddressSpace))")
        state.withLock { _ = $0.sections.removeValue(forKey: s.offsetWithinAddressSpace) }
    }
    func regionNop(_ s: MemoryRegionSection) { log.add("\(tag).nop \(s.region.name)@\(hx(s.offsetWithinAddressSpace))") }
    func eventfdAdd(_ fd: MemoryRegionIoeventfd, in space: AddressSpace) {
        log.add("\(tag).eventfd_add \(hx(fd.start))/\(fd.size)")
        state.withLock { $0.eventfds.append(fd) }
    }
    func eventfdDel(_ fd: MemoryRegionIoeventfd, in space: AddressSpace) {
        log.add("\(tag).eventfd_del \(hx(fd.start))/\(fd.size)")
        state.withLock { s in
            if let i = s.eventfds.firstIndex(where: { $0.isSameEntry(fd) }) { s.eventfds.remove(at: i) }
            else { s.eventfds.append(MemoryRegionIoeventfd(start: .max, size: 99, matchData: false, data: 0, notifier: fd.notifier)) }
        }
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
