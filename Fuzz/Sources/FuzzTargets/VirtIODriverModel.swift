import Devices
import Foundation
import Memory
import VirtIO

/// The driver's side of a virtio-pci device for the device targets (`virtio-net`,
/// `virtio-serial`), with what the checks need to know about it.
///
/// The script drives the transport through BAR4 as a driver does (feature negotiation, queue
/// setup, MSI-X, DRIVER_OK: each a plain MMIO write, so a script that moved the BARs misses),
/// writes guest RAM and publishes chains in the rings the device took. The model keeps:
///
/// - each queue's rings as the device took them, read back from the common configuration right
///   after the access that enabled the queue (later address writes do not move a live queue);
/// - a shadow of guest RAM. After every step that runs device code, each byte that changed
///   must lie where the device could write before the step: a used ring of an enabled queue
///   (with its avail_event), or a buffer a descriptor marks device-writable — in a descriptor
///   table, or in an indirect table a descriptor points to. A superset of the buffers of
///   available chains, so a failure is a write no chain allowed. Not checked: a step that
///   starts with an avail ring, descriptor table or indirect table lying where the device may
///   write (a hostile layout: the device may legitimately rewrite descriptors it then
///   follows, so any byte may be a buffer by then);
/// - per queue, the chains made available (the avail index counted forward from 0 at enable,
///   as the device counts it) and the chains returned (the used index the device writes). The
///   device never returns more chains than were made available. A queue whose index fields a
///   device-writable place overlaps (a hostile layout, where the device's own legitimate writes
///   move them), whose avail index jumps by more than the queue size, or whose used index the
///   driver scribbled over, is no longer counted.
final class VirtIODriverModel {
    /// A queue's rings as the device took them, and its counts.
    struct Queue {
        let size: UInt16
        let desc: UInt64, avail: UInt64, used: UInt64
        /// The next descriptor `publish` fills (the driver's free-list, as a ring).
        var nextDescriptor: UInt16 = 0
        /// The avail index as last read, and the chains made available since enable.
        var lastAvail: UInt16 = 0
        var madeAvailable = 0
        /// The used index the device wrote last (0 at enable: the device counts from there,
        /// whatever RAM held), the RAM value last read, and the chains returned since enable.
        var deviceUsed: UInt16 = 0
        var lastRAMUsed: UInt16
        var usedTotal = 0
        /// The counts still mean something (see the type's notes).
        var counting = true

        var usedBytes: UInt64 { 6 + 8 * UInt64(size) }
    }

    /// Where the device may write, for one state of RAM and the queues.
    struct Writable {
        /// Device-writable buffers, sorted and merged, clipped to RAM.
        var buffers: [Range<Int>] = []
        /// Each enabled queue's used ring (with avail_event), clipped to RAM.
        var usedRings: [(queue: Int, range: Range<Int>)] = []
        /// No avail ring, descriptor table or indirect table lies in `buffers` or `usedRings`:
        /// what the device reads to find buffers cannot change under it.
        var stable = true

        func contains(_ i: Int) -> Bool {
            usedRings.contains { $0.range.contains(i) } || Ranges.contains(buffers, i)
        }
    }

    let name: String
    let bench: VirtIOPCIBench
    let ramSize: Int
    /// Guest RAM as the driver and the checked device steps left it.
    private(set) var shadow: [UInt8]
    private(set) var queues: [Queue?]
    /// Chains returned per queue over the whole run (across re-enables), and whether every
    /// enable of it stayed counted.
    private(set) var usedEver: [Int]
    private(set) var countedEver: [Bool]
    private var writableCache: Writable?
    /// MMIO writes made since the last `takeMMIOWrites` (a device-configuration write may emit
    /// one byte on a console: the virtio-serial target's budget).
    private var mmioWrites = 0

    init(name: String, bench: VirtIOPCIBench) {
        self.name = name
        self.bench = bench
        ramSize = Int(VirtIOPCIBench.ramSize)
        shadow = [UInt8](repeating: 0, count: ramSize)
        queues = Array(repeating: nil, count: bench.device.queues.count)
        usedEver = Array(repeating: 0, count: bench.device.queues.count)
        countedEver = Array(repeating: true, count: bench.device.queues.count)
    }

    /// A fresh run: RAM holds `image` then zeros, no queue is known (the bench was reset).
    func reset(image: [UInt8]) {
        bench.ram.fill(with: image)
        shadow = bench.ram.contents
        queues = Array(repeating: nil, count: queues.count)
        usedEver = Array(repeating: 0, count: queues.count)
        countedEver = Array(repeating: true, count: queues.count)
        writableCache = nil
        mmioWrites = 0
    }

    // MARK: Reading the shadow

    func le(_ at: UInt64, _ n: Int) -> UInt64? { Self.le(shadow, at, n) }

    static func le(_ m: [UInt8], _ at: UInt64, _ n: Int) -> UInt64? {
        guard at < UInt64(m.count), UInt64(n) <= UInt64(m.count) - at else { return nil }
        var v: UInt64 = 0
        for i in 0..<n { v |= UInt64(m[Int(at) + i]) << (8 * UInt64(i)) }
        return v
    }

    /// `count` bytes at `at`, or nil where they leave RAM.
    static func bytes(_ m: [UInt8], _ at: UInt64, _ count: UInt64) -> ArraySlice<UInt8>? {
        guard at < UInt64(m.count), count <= UInt64(m.count) - at else { return nil }
        return m[Int(at)..<(Int(at) + Int(count))]
    }

    // MARK: The driver

    /// The driver writes guest RAM (clipped to RAM). Writing over a queue's used index ends
    /// that queue's counting.
    func write(_ bytes: [UInt8], at address: UInt64) throws(FuzzFailure) {
        guard address < UInt64(ramSize), !bytes.isEmpty else { return }
        let n = min(bytes.count, ramSize - Int(address))
        let range = Int(address)..<(Int(address) + n)
        bench.ram.write(bytes[0..<n], offset: address)
        shadow.replaceSubrange(range, with: bytes[0..<n])
        writableCache = nil
        for q in queues.indices {
            guard let t = queues[q] else { continue }
            let idx = Int(t.used + 2)..<Int(t.used + 4)
            if idx.overlaps(range) { stopCounting(q) }
        }
        try account()
    }

    func store(_ value: UInt64, _ size: Int, at address: UInt64) throws(FuzzFailure) {
        try write((0..<size).map { UInt8(truncatingIfNeeded: value >> (8 * UInt64($0))) }, at: address)
    }

    /// Publishes a chain of (address, length, writable) buffers on queue `q` (nothing when the
    /// device has not taken the queue): descriptors from the driver's next free one, or an
    /// indirect table at `indirect` with one descriptor pointing to it; then the avail entry
    /// and index. Returns the head.
    @discardableResult
    func publish(_ q: Int, _ buffers: [(address: UInt64, length: UInt32, writable: Bool)],
                 indirect: UInt64? = nil) throws(FuzzFailure) -> UInt16? {
        guard queues.indices.contains(q), let t = queues[q], !buffers.isEmpty else { return nil }
        func descriptor(_ b: (address: UInt64, length: UInt32, writable: Bool), next: UInt16?) -> [UInt8] {
            let flags: UInt16 = (next != nil ? 1 : 0) | (b.writable ? 2 : 0)
            return SeedCorpus.descriptor(b.address, b.length, flags, next ?? 0)
        }
        let head = t.nextDescriptor % t.size
        if let table = indirect {
            var bytes: [UInt8] = []
            for (i, b) in buffers.enumerated() { bytes += descriptor(b, next: i + 1 < buffers.count ? UInt16(i + 1) : nil) }
            try write(bytes, at: table)
            try write(SeedCorpus.descriptor(table, UInt32(16 * buffers.count), 4, 0), at: t.desc + 16 * UInt64(head))
            queues[q]?.nextDescriptor = (head &+ 1) % t.size
        } else {
            var d = head
            for (i, b) in buffers.enumerated() {
                let next = (d &+ 1) % t.size
                try write(descriptor(b, next: i + 1 < buffers.count ? next : nil), at: t.desc + 16 * UInt64(d))
                d = next
            }
            queues[q]?.nextDescriptor = d
        }
        let idx = UInt16(truncatingIfNeeded: le(t.avail + 2, 2) ?? 0)
        try store(UInt64(head), 2, at: t.avail + 4 + 2 * UInt64(idx % t.size))
        try store(UInt64(idx &+ 1), 2, at: t.avail + 2)
        return head
    }

    // MARK: MMIO as a driver makes it

    /// A write in BAR4 at `offset` (to wherever BAR4 is now).
    func mmioWrite(_ offset: UInt64, _ value: UInt64, _ size: Int) {
        busWrite(bench.bar4 &+ offset, value, size)
        captureLayouts()
    }

    /// A write on the memory bus. Where it lands in RAM (a BAR the script disabled or moved
    /// over RAM), the bytes are the driver's own.
    func busWrite(_ address: UInt64, _ value: UInt64, _ size: Int) {
        bench.memory.write(address, value: value, size: size)
        mmioWrites += 1
        guard address < UInt64(ramSize) else { return }
        let range = Int(address)..<min(ramSize, Int(address) + size)
        guard let now = bench.ram.read(offset: address, count: range.count), now[...] != shadow[range] else { return }
        shadow.replaceSubrange(range, with: now)
        writableCache = nil
        for q in queues.indices {
            guard let t = queues[q] else { continue }
            if (Int(t.used + 2)..<Int(t.used + 4)).overlaps(range) { stopCounting(q) }
        }
    }

    func mmioRead(_ offset: UInt64, _ size: Int) -> UInt64 { bench.memory.read(bench.bar4 + offset, size: size).value }

    /// Any other MMIO or config access the script made: counted, layouts captured.
    func touchedTransport(writes: Int = 1) {
        mmioWrites += writes
        captureLayouts()
    }

    func takeMMIOWrites() -> Int {
        defer { mmioWrites = 0 }
        return mmioWrites
    }

    /// ACKNOWLEDGE, DRIVER, the feature words, FEATURES_OK.
    func negotiate(_ features: UInt64) {
        mmioWrite(0x14, 1, 1)
        mmioWrite(0x14, 3, 1)
        for select: UInt64 in 0...1 {
            mmioWrite(0x08, select, 4)
            mmioWrite(0x0c, (features >> (32 * select)) & 0xffff_ffff, 4)
        }
        mmioWrite(0x14, 0xb, 1)
    }

    /// Queue `q`: size, vector, ring addresses, enable; with `zero`, the rings are cleared
    /// first (a driver's freshly allocated rings).
    func setUpQueue(_ q: UInt16, size: UInt16, desc: UInt64, avail: UInt64, used: UInt64, vector: UInt16,
                    zero: Bool) throws(FuzzFailure) {
        if zero {
            let n = Int(size)
            try write([UInt8](repeating: 0, count: 16 * n), at: desc)
            try write([UInt8](repeating: 0, count: 6 + 2 * n), at: avail)
            try write([UInt8](repeating: 0, count: 6 + 8 * n), at: used)
        }
        mmioWrite(0x16, UInt64(q), 2)
        mmioWrite(0x18, UInt64(size), 2)
        mmioWrite(0x1a, UInt64(vector), 2)
        for (offset, v) in [(UInt64(0x20), desc), (0x28, avail), (0x30, used)] {
            mmioWrite(offset, v & 0xffff_ffff, 4)
            mmioWrite(offset + 4, v >> 32, 4)
        }
        mmioWrite(0x1c, 1, 2)
    }

    /// MSI-X on with entries 0..<n (data 0x40 + i) unmasked, config vector 0.
    func enableMSIX(vectors n: Int) {
        let bar1 = bench.bar1
        for i in 0..<UInt64(min(n, bench.device.msix?.vectorCount ?? 0)) {
            busWrite(bar1 &+ 16 * i, 0xfee0_0000, 4)
            busWrite(bar1 &+ 16 * i + 8, 0x40 + i, 4)
            busWrite(bar1 &+ 16 * i + 12, 0, 4)
        }
        bench.device.configWrite(offset: bench.msixCap + 2, value: 0x8000, size: 2)
        mmioWrite(0x10, 0, 2)
    }

    func driverOK() { mmioWrite(0x14, (mmioRead(0x14, 1) | 4) & 0xff, 1) }

    // MARK: Queues

    /// Takes the rings of every queue that became ready, forgets those that are not.
    func captureLayouts() {
        let ops = bench.commonOps
        for q in queues.indices {
            guard bench.device.queues[q].isReady else {
                if queues[q] != nil {
                    queues[q] = nil
                    writableCache = nil
                }
                continue
            }
            guard queues[q] == nil else { continue }
            let select = ops.read(0x16, 2)
            ops.write(0x16, UInt64(q), 2)
            let size = UInt16(truncatingIfNeeded: ops.read(0x18, 2))
            let desc = ops.read(0x20, 4) | ops.read(0x24, 4) << 32
            let avail = ops.read(0x28, 4) | ops.read(0x2c, 4) << 32
            let used = ops.read(0x30, 4) | ops.read(0x34, 4) << 32
            ops.write(0x16, select, 2)
            // Enable checked that every ring lies in RAM.
            let usedIdx = UInt16(truncatingIfNeeded: le(used &+ 2, 2) ?? 0)
            queues[q] = Queue(size: max(size, 1), desc: desc, avail: avail, used: used, lastRAMUsed: usedIdx)
            writableCache = nil
        }
    }

    func stopCounting(_ q: Int) {
        queues[q]?.counting = false
        countedEver[q] = false
    }

    /// Reads every known queue's indices: chains made available and returned, checked.
    func account() throws(FuzzFailure) {
        for q in queues.indices {
            guard var t = queues[q] else { continue }
            let a = UInt16(truncatingIfNeeded: le(t.avail + 2, 2) ?? 0)
            let u = UInt16(truncatingIfNeeded: le(t.used + 2, 2) ?? 0)
            let forward = a &- t.lastAvail
            if forward > t.size {
                t.counting = false
                countedEver[q] = false
            } else {
                t.madeAvailable += Int(forward)
            }
            t.lastAvail = a
            if u != t.lastRAMUsed {
                let returned = u &- t.deviceUsed
                t.usedTotal += Int(returned)
                usedEver[q] += Int(returned)
                t.deviceUsed = u
                t.lastRAMUsed = u
                if t.counting {
                    queues[q] = t
                    try require(t.usedTotal <= t.madeAvailable, name,
                                "queue \(q): the used index moved to \(u): \(t.usedTotal) chains returned, \(t.madeAvailable) made available")
                }
            }
            queues[q] = t
        }
    }

    // MARK: Device steps

    /// Where the device may write now (cached until RAM or the queues change). Computing it
    /// also ends the counting of queues whose index fields it overlaps.
    func writable() -> Writable {
        if let w = writableCache { return w }
        let w = Self.writable(shadow, queues)
        for q in queues.indices {
            guard let t = queues[q], t.counting else { continue }
            let avail = Int(t.avail + 2)..<Int(t.avail + 4), used = Int(t.used + 2)..<Int(t.used + 4)
            if Ranges.overlaps(w.buffers, avail) || Ranges.overlaps(w.buffers, used)
                || w.usedRings.contains(where: { $0.range.overlaps(avail) || ($0.queue != q && $0.range.overlaps(used)) }) {
                stopCounting(q)
            }
        }
        writableCache = w
        return w
    }

    static func writable(_ m: [UInt8], _ queues: [Queue?]) -> Writable {
        var w = Writable()
        var buffers: [Range<Int>] = []
        var tables: [(start: Int, count: Int)] = []
        var inputs: [Range<Int>] = []
        let ram = UInt64(m.count)
        func clip(_ address: UInt64, _ length: UInt64) -> Range<Int>? {
            guard address < ram, length > 0 else { return nil }
            let end = min(ram, address.addingReportingOverflow(length).overflow ? ram : address + length)
            return Int(address)..<Int(end)
        }
        for (q, queue) in queues.enumerated() {
            guard let t = queue else { continue }
            if let r = clip(t.used, t.usedBytes) { w.usedRings.append((q, r)) }
            if let r = clip(t.desc, 16 * UInt64(t.size)) { inputs.append(r) }
            if let r = clip(t.avail, 6 + 2 * UInt64(t.size)) { inputs.append(r) }
            for i in 0..<UInt64(t.size) {
                let at = t.desc + 16 * i
                guard let address = le(m, at, 8), let rest = le(m, at + 8, 8) else { break }
                let length = rest & 0xffff_ffff, flags = (rest >> 32) & 0xffff
                if flags & 2 != 0, let r = clip(address, length) { buffers.append(r) }
                if flags & 4 != 0, length > 0, length % 16 == 0, address < ram {
                    tables.append((Int(address), Int(min(length / 16, (ram - address) / 16))))
                }
            }
        }
        // Indirect tables: each entry read once, however many tables overlap (tables with the
        // same start modulo 16 share entries; merge their spans per residue).
        for residue in 0..<16 {
            let spans = tables.filter { $0.start % 16 == residue }.map { $0.start..<($0.start + 16 * $0.count) }
            for span in Ranges.merged(spans) {
                inputs.append(span)
                var at = span.lowerBound
                while at + 16 <= span.upperBound {
                    if let address = le(m, UInt64(at), 8), let rest = le(m, UInt64(at + 8), 8), (rest >> 32) & 2 != 0,
                       let r = clip(address, rest & 0xffff_ffff) {
                        buffers.append(r)
                    }
                    at += 16
                }
            }
        }
        w.buffers = Ranges.merged(buffers)
        w.stable = !inputs.contains { r in Ranges.overlaps(w.buffers, r) || w.usedRings.contains { $0.range.overlaps(r) } }
        return w
    }

    /// Runs device code (`body`), then checks that guest RAM changed only where the device could
    /// write before (when that was stable), takes the new RAM as the shadow, captures layouts
    /// and accounts the indices.
    @discardableResult
    func deviceStep<R>(_ body: () throws(FuzzFailure) -> R) throws(FuzzFailure) -> R {
        let before = writable()
        let result = try body()
        let now = bench.ram.contents
        let changed = Self.changedBytes(shadow, now)
        if !changed.isEmpty {
            let old = shadow
            shadow = now
            writableCache = nil
            for i in changed where before.stable {
                try require(before.contains(i), name,
                            "guest RAM byte \(hex(i)) changed (\(hex(old[i])) → \(hex(now[i]))) outside every used ring and device-writable buffer")
            }
        }
        captureLayouts()
        try account()
        return result
    }

    /// The offsets where `a` and `b` (of equal size) differ. Pages are compared as `Data`
    /// (one memcmp each): a byte loop here, instrumented for coverage like all fuzzer code,
    /// would cost more than the device steps it checks.
    static func changedBytes(_ a: [UInt8], _ b: [UInt8]) -> [Int] {
        let page = 4096
        var out: [Int] = []
        var start = 0
        while start < min(a.count, b.count) {
            let end = min(start + page, a.count, b.count)
            if Data(a[start..<end]) != Data(b[start..<end]) {
                for i in start..<end where a[i] != b[i] { out.append(i) }
            }
            start = end
        }
        return out
    }

    // MARK: Chains, as the device would read them

    /// The buffers of the chain at `head` of queue `t`, following VirtQueue's rules (indirect
    /// only at the head, every buffer non-empty and in order, at most 1024 buffers, indices in
    /// range); nil where the device would refuse the chain. Reads `m`.
    static func chain(_ m: [UInt8], _ t: Queue, head: UInt16) -> [(address: UInt64, length: UInt32, writable: Bool)]? {
        guard head < t.size else { return nil }
        func descriptor(_ table: UInt64, _ i: UInt64) -> (UInt64, UInt32, UInt16, UInt16)? {
            guard let address = le(m, table &+ 16 * i, 8), let rest = le(m, table &+ 16 * i &+ 8, 8) else { return nil }
            return (address, UInt32(truncatingIfNeeded: rest), UInt16(truncatingIfNeeded: rest >> 32), UInt16(truncatingIfNeeded: rest >> 48))
        }
        var table = t.desc, tableSize = UInt64(t.size)
        guard var d = descriptor(table, UInt64(head)) else { return nil }
        if d.2 & 4 != 0 {
            guard d.1 > 0, d.1 % 16 == 0, UInt64(d.1 - 1) <= UInt64.max - d.0 else { return nil }
            table = d.0
            tableSize = UInt64(d.1 / 16)
            guard let first = descriptor(table, 0) else { return nil }
            d = first
        }
        var out: [(address: UInt64, length: UInt32, writable: Bool)] = []
        var lastWritable = false
        while true {
            guard UInt64(out.count) < tableSize, d.1 > 0, out.count < VirtQueue.maxChainDescriptors else { return nil }
            let writable = d.2 & 2 != 0
            guard writable || !lastWritable, UInt64(d.1 - 1) <= UInt64.max - d.0 else { return nil }
            out.append((d.0, d.1, writable))
            lastWritable = writable
            guard d.2 & 1 != 0 else { return out }
            guard UInt64(d.3) < tableSize, let next = descriptor(table, UInt64(d.3)) else { return nil }
            d = next
        }
    }

    /// Whether what the device reads to pop and read the chain at `head` of `t` — the avail
    /// ring, the descriptor table, the indirect table, the device-readable buffers — overlaps a
    /// place the device may write: then the device may see it change while it works through
    /// the queue, and what it reads cannot be known from RAM before or after.
    func chainMayChange(_ t: Queue, head: UInt16, _ buffers: [(address: UInt64, length: UInt32, writable: Bool)]) -> Bool {
        let w = writable()
        func hit(_ address: UInt64, _ length: UInt64) -> Bool {
            guard address < UInt64(ramSize), length > 0 else { return false }
            let r = Int(address)..<Int(min(UInt64(ramSize), address.addingReportingOverflow(length).overflow ? UInt64(ramSize) : address + length))
            return Ranges.overlaps(w.buffers, r) || w.usedRings.contains { $0.range.overlaps(r) }
        }
        if hit(t.avail, 6 + 2 * UInt64(t.size)) || hit(t.desc, 16 * UInt64(t.size)) { return true }
        if let d = le(t.desc + 16 * UInt64(head % t.size), 8), let rest = le(t.desc + 16 * UInt64(head % t.size) + 8, 8),
           (rest >> 32) & 4 != 0, hit(d, rest & 0xffff_ffff) {
            return true
        }
        return buffers.contains { !$0.writable && hit($0.address, UInt64($0.length)) }
    }

    /// The device-readable bytes of a chain (nil when a buffer leaves RAM: the device fails
    /// the chain), at most `limit` of them (`overflow` tells whether there were more).
    static func readableBytes(_ m: [UInt8], _ buffers: [(address: UInt64, length: UInt32, writable: Bool)],
                              limit: Int) -> (bytes: [UInt8], overflow: Bool)? {
        var out: [UInt8] = []
        var overflow = false
        for b in buffers where !b.writable {
            guard let slice = bytes(m, b.address, UInt64(b.length)) else { return nil }
            if out.count + slice.count > limit {
                out += slice.prefix(limit - out.count)
                overflow = true
            } else if !overflow {
                out += slice
            }
        }
        return (out, overflow)
    }
}

/// Sorted, merged half-open ranges.
enum Ranges {
    static func merged(_ ranges: [Range<Int>]) -> [Range<Int>] {
        var out: [Range<Int>] = []
        for r in ranges.sorted(by: { $0.lowerBound < $1.lowerBound }) where !r.isEmpty {
            if let last = out.last, r.lowerBound <= last.upperBound {
                out[out.count - 1] = last.lowerBound..<max(last.upperBound, r.upperBound)
            } else {
                out.append(r)
            }
        }
        return out
    }

    /// Whether `i` lies in one of the merged `ranges`.
    static func contains(_ ranges: [Range<Int>], _ i: Int) -> Bool {
        var lo = 0, hi = ranges.count
        while lo < hi {
            let mid = (lo + hi) / 2
            if ranges[mid].upperBound <= i { lo = mid + 1 } else { hi = mid }
        }
        return lo < ranges.count && ranges[lo].contains(i)
    }

    static func overlaps(_ ranges: [Range<Int>], _ r: Range<Int>) -> Bool {
        var lo = 0, hi = ranges.count
        while lo < hi {
            let mid = (lo + hi) / 2
            if ranges[mid].upperBound <= r.lowerBound { lo = mid + 1 } else { hi = mid }
        }
        return lo < ranges.count && ranges[lo].overlaps(r)
    }
}
