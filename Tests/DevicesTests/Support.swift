import Memory
import Synchronization
@testable import Devices

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
