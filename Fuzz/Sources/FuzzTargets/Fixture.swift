import Foundation
import Memory

/// State built once per process and reused by every run of a target, under a lock.
///
/// Devices here are never freed (each device and its register region hold each other, as the
/// machine wants: see `DeviceRef`), and an `AddressSpace` stays in its `MemorySystem`; a
/// target that built them per input would leak memory and eventfds at the fuzzer's rate. So
/// a target builds its address spaces and devices once and puts them back in their initial
/// state before each input, through the same registers a guest or firmware uses, which keeps
/// runs deterministic. The lock makes parallel test replays safe.
final class Fixture<T>: @unchecked Sendable {
    // @unchecked: `value` is only touched with `lock` held.
    private let lock = NSLock()
    private var value: T?
    private let make: () -> T

    init(_ make: @escaping () -> T) { self.make = make }

    func with<R>(_ body: (T) throws(FuzzFailure) -> R) throws(FuzzFailure) -> R {
        lock.lock()
        defer { lock.unlock() }
        let v: T
        if let value { v = value } else { v = make(); value = v }
        return try body(v)
    }
}

/// Guest RAM for a fixture; a host that cannot map a few KiB is not a finding.
func makeRAM(_ name: String, _ size: UInt64) -> MemoryRegion {
    do { return try MemoryRegion.ram(name: name, size: size) } catch {
        fatalError("fuzz fixture: cannot map \(size) bytes of RAM: \(error)")
    }
}

/// An address space over a fresh root container of `size` bytes in `system`.
func makeSpace(_ name: String, size: UInt128, system: MemorySystem) -> (root: MemoryRegion, space: AddressSpace) {
    let root = MemoryRegion.container(name: name, size: size)
    return (root, AddressSpace(root: root, name: name, system: system))
}

extension RAMBlock {
    /// Sets the whole block to `image` followed by zeros, rewriting only the pages that differ
    /// (a run's device writes are few). Pages are compared as `Data` (one memcmp each): a byte
    /// loop, instrumented for coverage like all fuzzer code, would dominate short runs.
    func fill(with image: [UInt8]) {
        let current = contents
        let page = 4096
        var start = 0
        while start < current.count {
            let end = min(start + page, current.count)
            var want = [UInt8](repeating: 0, count: end - start)
            if start < image.count {
                let n = min(end, image.count) - start
                want.replaceSubrange(0..<n, with: image[start..<(start + n)])
            }
            if Data(current[start..<end]) != Data(want) { write(want, offset: UInt64(start)) }
            start = end
        }
    }

    /// A copy of the whole block.
    var contents: [UInt8] { read(offset: 0, count: Int(size)) ?? [] }
}
