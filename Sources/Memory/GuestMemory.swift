/// Why a guest-memory access failed.
public enum GuestMemoryError: Error, Equatable, CustomStringConvertible {
    /// Part of the range is not RAM or ROM (a device, or nothing).
    case notRAM(address: UInt64)
    /// The range wraps past the end of the address space.
    case overflow(address: UInt64, count: Int)

    public var description: String {
        switch self {
        case .notRAM(let a): return "guest address 0x\(String(a, radix: 16)) is not RAM"
        case .overflow(let a, let n): return "guest range 0x\(String(a, radix: 16)) + \(n) wraps around"
        }
    }
}

/// Bounds-checked access to guest RAM by guest-physical address, across RAM/ROM regions, for
/// loaders and devices (virtqueues, DMA). It copies; it never hands out a pointer. Writes
/// reach ROM too (a loader filling firmware); the guest itself cannot write ROM.
/// QEMU: `address_space_read()`/`address_space_write_rom()` on RAM.
public struct GuestMemory: Sendable {
    public let addressSpace: AddressSpace

    public init(_ addressSpace: AddressSpace) { self.addressSpace = addressSpace }

    /// Visits each RAM piece of `[address, address + count)`.
    private func forEachPiece(_ address: UInt64, _ count: Int,
                              _ body: (RAMBlock, _ offset: UInt64, _ done: Int, _ length: Int) -> Void) throws(GuestMemoryError) {
        guard count >= 0 else { throw .overflow(address: address, count: count) }
        guard count > 0 else { return }
        guard UInt64(count - 1) <= UInt64.max - address else { throw .overflow(address: address, count: count) }
        let view = addressSpace.currentMap
        // Check the whole range first, so a failing access changes nothing.
        var pieces: [(RAMBlock, UInt64, Int, Int)] = []
        var done = 0
        while done < count {
            let addr = address + UInt64(done)
            guard let i = view.lookup(addr), let block = view.ranges[i].region.ramBlock else {
                throw .notRAM(address: addr)
            }
            let fr = view.ranges[i]
            let left = fr.end - UInt128(addr)
            let l = left < UInt128(count - done) ? Int(left) : count - done
            let offset = fr.offsetInRegion + (addr - fr.start)
            guard block.contains(offset: offset, count: l) else { throw .notRAM(address: addr) }
            pieces.append((block, offset, done, l))
            done += l
        }
        for p in pieces { body(p.0, p.1, p.2, p.3) }
    }

    /// Copies `count` bytes starting at `address`.
    public func read(at address: UInt64, count: Int) throws(GuestMemoryError) -> [UInt8] {
        var out = [UInt8](repeating: 0, count: max(count, 0))
        try forEachPiece(address, count) { block, offset, done, length in
            if let bytes = block.read(offset: offset, count: length) {
                out.replaceSubrange(done..<(done + length), with: bytes)
            }
        }
        return out
    }

    /// Copies `bytes` to `address`; nothing is written if any part is not RAM.
    public func write(_ bytes: some Collection<UInt8>, at address: UInt64) throws(GuestMemoryError) {
        let array = Array(bytes)
        try forEachPiece(address, array.count) { block, offset, done, length in
            block.write(array[done..<(done + length)], offset: offset)
        }
    }

    /// Reads a little-endian integer.
    public func load<T: FixedWidthInteger>(_ type: T.Type, at address: UInt64) throws(GuestMemoryError) -> T {
        let bytes = try read(at: address, count: MemoryLayout<T>.size)
        var v = T.zero
        for (i, b) in bytes.enumerated() { v |= T(truncatingIfNeeded: b) << (8 * i) }
        return v
    }

    /// Writes a little-endian integer.
    public func store<T: FixedWidthInteger>(_ value: T, at address: UInt64) throws(GuestMemoryError) {
        let n = MemoryLayout<T>.size
        let bytes = (0..<n).map { UInt8(truncatingIfNeeded: value >> (8 * $0)) }
        try write(bytes, at: address)
    }
}

extension AddressSpace {
    /// Bounds-checked access to this space's RAM.
    public var guestMemory: GuestMemory { GuestMemory(self) }
}
