import KVM
import Memory
import TestSupport
import Testing
@testable import KVMAccel

/// Which RAM sections become read-only KVM slots: as QEMU's kvm_mem_flags(), the region's own
/// read-only flag decides (ROM, RAM set read-only), not an alias's: RAM shown through a read-only
/// alias (the i440FX PAM windows in their "read-only" mode) is a writable slot.
@Suite(.enabled(if: TestHost.kvmAvailable, "requires read/write access to /dev/kvm"))
struct ReadOnlySlotTests {
    @Test func slotFlagsFollowTheRegionNotTheAlias() throws {
        let vm = try KVMSystem().createVM()
        let accelerator = KVMAccelerator(vm: vm)
        try #require(accelerator.readOnlyMemory, "KVM_CAP_READONLY_MEM is needed for read-only slots")
        let system = MemorySystem()
        let root = MemoryRegion.container(name: "system", size: UInt128(1) << 64)
        let ram = try MemoryRegion.ram(name: "ram", size: 0x10000)
        let shadow = MemoryRegion.alias(name: "pam-rom", target: ram, offset: 0x4000, size: 0x4000)
        shadow.setReadOnly(true)
        let rom = try MemoryRegion.rom(name: "rom", size: 0x1000)
        let lockedRAM = try MemoryRegion.ram(name: "locked", size: 0x1000)
        lockedRAM.setReadOnly(true)
        root.addSubregion(shadow, at: 0x10_0000)
        root.addSubregion(rom, at: 0x20_0000)
        root.addSubregion(lockedRAM, at: 0x30_0000)
        let memory = AddressSpace(root: root, name: "memory", system: system)
        let io = AddressSpace(root: .ioRoot(), name: "I/O", system: system)
        accelerator.attach(memory: memory, io: io)

        // The flat view marks the alias read-only (userspace dispatch refuses writes there)...
        #expect(memory.currentMap.ranges.first { $0.start == 0x10_0000 }?.readOnly == true)
        // ...but KVM gets a writable slot for it, and read-only ones for ROM and read-only RAM.
        let slots = Dictionary(uniqueKeysWithValues: accelerator.slots.current.map { ($0.guestAddress, $0.readOnly) })
        #expect(slots == [0x10_0000: false, 0x20_0000: true, 0x30_0000: true])

        // Making the alias writable again changes nothing KVM sees but the slot's section.
        shadow.setReadOnly(false)
        #expect(accelerator.slots.current.first { $0.guestAddress == 0x10_0000 }?.readOnly == false)
    }
}
