import Memory
import Synchronization
@testable import Devices
#if canImport(Glibc)
import Glibc
#endif

/// An I/O port space and a memory space on a private memory system, as the machine builds them.
struct TestBus {
    let system = MemorySystem()
    let io = MemoryRegion.container(name: "io", size: 0x10000)
    let memory = MemoryRegion.container(name: "memory", size: UInt128(1) << 64)
    let ioSpace: AddressSpace
    let memorySpace: AddressSpace

    init() {
        ioSpace = AddressSpace(root: io, name: "I/O", system: system)
        memorySpace = AddressSpace(root: memory, name: "memory", system: system)
    }

    func inb(_ port: UInt64) -> UInt8 { UInt8(truncatingIfNeeded: ioSpace.read(port, size: 1).value) }
    func inw(_ port: UInt64) -> UInt16 { UInt16(truncatingIfNeeded: ioSpace.read(port, size: 2).value) }
    func inl(_ port: UInt64) -> UInt32 { UInt32(truncatingIfNeeded: ioSpace.read(port, size: 4).value) }
    func outb(_ port: UInt64, _ v: UInt64) { ioSpace.write(port, value: v, size: 1) }
    func outw(_ port: UInt64, _ v: UInt64) { ioSpace.write(port, value: v, size: 2) }
    func outl(_ port: UInt64, _ v: UInt64) { ioSpace.write(port, value: v, size: 4) }
}

/// An IRQ that records every level it is driven to.
final class IRQRecorder: Sendable {
    private let levels = Mutex<[Bool]>([])
    var irq: IRQ { IRQ { level in self.levels.withLock { $0.append(level) } } }
    var history: [Bool] { levels.withLock { $0 } }
    var level: Bool { levels.withLock { $0.last ?? false } }
    func clear() { levels.withLock { $0 = [] } }
}

/// A seeded, reproducible generator (SplitMix64) for the randomized tests: the seed comes from
/// `VMM_TEST_SEED` (decimal or 0x-hex) when set, else from the system generator; tests print it
/// in every failure so a failing run can be replayed.
struct SeededGenerator: RandomNumberGenerator {
    private var state: UInt64
    let seed: UInt64

    init(seed: UInt64) {
        self.seed = seed
        state = seed
    }

    /// The seed a test should use: `VMM_TEST_SEED`, or a fresh random one.
    static func seedFromEnvironment() -> UInt64 {
        if let text = getenv("VMM_TEST_SEED").map({ String(cString: $0) }) {
            let parsed = text.hasPrefix("0x") ? UInt64(text.dropFirst(2), radix: 16) : UInt64(text)
            if let parsed { return parsed }
        }
        return UInt64.random(in: 0...UInt64.max)
    }

    mutating func next() -> UInt64 {
        state &+= 0x9e37_79b9_7f4a_7c15
        var z = state
        z = (z ^ (z >> 30)) &* 0xbf58_476d_1ce4_e5b9
        z = (z ^ (z >> 27)) &* 0x94d0_49bb_1331_11eb
        return z ^ (z >> 31)
    }
}
