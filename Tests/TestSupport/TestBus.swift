import Memory

/// An I/O port space and a memory space on a private memory system, as the machine builds them,
/// with `in`/`out` helpers for poking devices the way a guest does.
public struct TestBus: Sendable {
    public let system = MemorySystem()
    public let io = MemoryRegion.container(name: "io", size: 0x10000)
    public let memory = MemoryRegion.container(name: "memory", size: UInt128(1) << 64)
    public let ioSpace: AddressSpace
    public let memorySpace: AddressSpace

    public init() {
        ioSpace = AddressSpace(root: io, name: "I/O", system: system)
        memorySpace = AddressSpace(root: memory, name: "memory", system: system)
    }

    public func inb(_ port: UInt64) -> UInt8 { UInt8(truncatingIfNeeded: ioSpace.read(port, size: 1).value) }
    public func inw(_ port: UInt64) -> UInt16 { UInt16(truncatingIfNeeded: ioSpace.read(port, size: 2).value) }
    public func inl(_ port: UInt64) -> UInt32 { UInt32(truncatingIfNeeded: ioSpace.read(port, size: 4).value) }
    public func outb(_ port: UInt64, _ v: UInt64) { ioSpace.write(port, value: v, size: 1) }
    public func outw(_ port: UInt64, _ v: UInt64) { ioSpace.write(port, value: v, size: 2) }
    public func outl(_ port: UInt64, _ v: UInt64) { ioSpace.write(port, value: v, size: 4) }
}
