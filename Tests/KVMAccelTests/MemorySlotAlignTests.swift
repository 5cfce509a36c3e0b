import Memory
import Synchronization
import Testing
@testable import KVMAccel

/// RAM sections where a guest can put them (a BAR over RAM splits RAM at any byte; RAM may end
/// at 2^64): the page-aligned part KVM can map is computed without wrapping.
/// QEMU: `kvm_align_section()`.
@Suite struct MemorySlotAlignTests {
    final class Sections: MemoryListener, @unchecked Sendable {
        let added = Mutex<[(guest: UInt64, size: UInt64, delta: UInt64)?]>([])
        func regionAdd(_ section: MemoryRegionSection) {
            let a = MemorySlots.align(section)
            added.withLock { $0.append(a.map { (guest: $0.guest, size: $0.size, delta: $0.delta) }) }
        }
    }

    func aligned(ramAt address: UInt64, size: UInt64) throws -> [(guest: UInt64, size: UInt64, delta: UInt64)?] {
        let system = MemorySystem()
        let root = MemoryRegion.container(name: "root", size: UInt128(1) << 64)
        root.addSubregion(try MemoryRegion.ram(name: "ram", size: size), at: address)
        let space = AddressSpace(root: root, name: "memory", system: system)
        let listener = Sections()
        space.register(listener)
        return listener.added.withLock { $0 }
    }

    @Test func sectionsAtTheTopOfTheAddressSpace() throws {
        // Ends at 2^64, starts mid-page: the aligned part is the last whole page.
        let top = try aligned(ramAt: UInt64.max - 0x17ff, size: 0x1800)
        #expect(top.count == 1)
        #expect(top.first??.guest == UInt64.max - 0xfff && top.first??.size == 0x1000 && top.first??.delta == 0x800)
        // Less than a page, mid-page at the top: aligning the start would wrap, so nothing is mapped.
        let tiny = try aligned(ramAt: UInt64.max - 0x7ff, size: 0x800)
        #expect(tiny.count == 1 && tiny.first! == nil)
        // Unaligned start and end below the top.
        let mid = try aligned(ramAt: 0x1234, size: 0x3000)
        #expect(mid.first??.guest == 0x2000 && mid.first??.size == 0x2000 && mid.first??.delta == 0xdcc)
    }
}
