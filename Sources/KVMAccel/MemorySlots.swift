import KVM
import Logging
import Memory
import Synchronization
import VMMSys

/// The KVM memory slots backing guest RAM and ROM, keyed by guest address.
/// QEMU: `KVMSlot` and `kvm_set_phys_mem()`.
public final class MemorySlots: Sendable {
    /// One registered slot.
    public struct Slot: Sendable, Equatable {
        public var slot: UInt32
        public var guestAddress: UInt64
        public var size: UInt64
        public var hostAddress: UInt64
        public var readOnly: Bool
    }

    private let vm: VirtualMachine
    private let logger: Logger
    /// The slots, the free slot numbers, and the RAM block behind each slot: held here so that
    /// no mapping the guest can reach is unmapped while its slot exists.
    private let state: Mutex<(slots: [Slot], free: [UInt32], blocks: [UInt32: RAMBlock])>
    /// A guest that moves a BAR over RAM splits RAM sections and so adds and removes slots;
    /// doing that in a loop must not flood the log.
    private let errorLog = RateLimitedLog()

    init(vm: VirtualMachine, count: Int, logger: Logger) {
        self.vm = vm
        self.logger = logger
        state = Mutex(([], (0..<UInt32(min(count, 512))).reversed(), [:]))
    }

    /// Deletes the slots still registered before their RAM blocks can be released (the VM may
    /// outlive this object: its vCPUs hold it).
    deinit {
        let remaining = state.withLock { $0.slots }
        for s in remaining {
            // SAFETY: size 0 deletes the slot; it hands the guest no memory.
            _ = try? unsafe vm.setUserMemoryRegion(slot: s.slot, guestPhysicalAddress: s.guestAddress, size: 0,
                                                   hostAddress: s.hostAddress)
        }
    }

    public var current: [Slot] { state.withLock { $0.slots.sorted { $0.guestAddress < $1.guestAddress } } }

    /// The page-aligned part of a section KVM can map. QEMU: `kvm_align_section()`.
    static func align(_ section: MemoryRegionSection) -> (guest: UInt64, size: UInt64, delta: UInt64)? {
        let page: UInt64 = 4096
        let start = section.offsetWithinAddressSpace
        let alignedStart = (start &+ page &- 1) & ~(page - 1)
        guard alignedStart >= start else { return nil }   // wrapped at the top
        let delta = alignedStart - start
        guard section.size > UInt128(delta) else { return nil }
        let size = UInt64(clamping: section.size - UInt128(delta)) & ~(page - 1)
        return size == 0 ? nil : (alignedStart, size, delta)
    }

    /// Maps a RAM/ROM section into a new slot.
    func add(_ section: MemoryRegionSection, readOnly: Bool) {
        guard let block = section.region.ramBlock, let (gpa, size, delta) = Self.align(section) else { return }
        let offset = section.offsetWithinRegion &+ delta
        guard offset <= block.size, size <= block.size - offset else {
            errorLog.log({ logger.error("\($0)") }) { "section of \(section.region.name) exceeds its RAM block; not mapped" }
            return
        }
        guard let slot = state.withLock({ $0.free.popLast() }) else {
            errorLog.log({ logger.error("\($0)") }) { "no free KVM memory slot for \(section.region.name) at 0x\(String(gpa, radix: 16))" }
            return
        }
        let s = Slot(slot: slot, guestAddress: gpa, size: size, hostAddress: block.hostAddress + offset, readOnly: readOnly)
        do {
            // SAFETY: [offset, offset + size) lies inside the RAM block (checked above), which is
            // kept in `blocks` until the slot is deleted (`remove`, or deinit).
            try unsafe vm.setUserMemoryRegion(slot: slot, flags: readOnly ? .readOnly : [], guestPhysicalAddress: gpa,
                                              size: size, hostAddress: s.hostAddress)
            state.withLock {
                $0.slots.append(s)
                $0.blocks[slot] = block
            }
        } catch {
            errorLog.log({ logger.error("\($0)") }) { "\(error)" }
            state.withLock { $0.free.append(slot) }
        }
    }

    /// Removes the slot that maps a section.
    func remove(_ section: MemoryRegionSection) {
        guard let (gpa, size, _) = Self.align(section) else { return }
        guard let s = state.withLock({ st -> Slot? in
            guard let i = st.slots.firstIndex(where: { $0.guestAddress == gpa && $0.size == size }) else { return nil }
            return st.slots.remove(at: i)
        }) else { return }
        do {
            // SAFETY: size 0 deletes the slot; it hands the guest no memory.
            try unsafe vm.setUserMemoryRegion(slot: s.slot, guestPhysicalAddress: gpa, size: 0, hostAddress: s.hostAddress)
        } catch {
            // The kernel still maps the block: keep the slot (and the block) as they are.
            errorLog.log({ logger.error("\($0)") }) { "\(error)" }
            state.withLock { $0.slots.append(s) }
            return
        }
        state.withLock {
            $0.free.append(s.slot)
            $0.blocks[s.slot] = nil
        }
    }
}
