import KVM
import Logging
import Memory
import Synchronization
import VMMSys

/// The KVM memory slots backing guest RAM and ROM, keyed by guest address.
/// QEMU: `KVMSlot` and `kvm_set_phys_mem()`.
public final class MemorySlots: Sendable {
    /// One registered slot. QEMU: `KVMSlot`.
    public struct Slot: Sendable, Equatable {
        /// The slot number given to the kernel. QEMU: `KVMSlot.slot`.
        public var slot: UInt32
        /// Guest-physical address of the slot's first byte. QEMU: `KVMSlot.start_addr`.
        public var guestAddress: UInt64
        /// Length in bytes, whole pages. QEMU: `KVMSlot.memory_size`.
        public var size: UInt64
        /// Host address of the slot's first byte, inside a RAM block's mapping. QEMU: `KVMSlot.ram`.
        public var hostAddress: UInt64
        /// `KVM_MEM_READONLY`: guest writes exit as MMIO (ROM).
        public var readOnly: Bool
        /// `KVM_MEM_LOG_DIRTY_PAGES`: the kernel logs the guest's writes to this slot.
        public var logDirtyPages = false

        /// The flags the slot is registered with. QEMU: `kvm_mem_flags()`.
        var flags: MemoryRegionFlags {
            var f: MemoryRegionFlags = readOnly ? .readOnly : []
            if logDirtyPages { f.insert(.logDirtyPages) }
            return f
        }
    }

    /// What stands behind a slot: the RAM block (held so that no mapping the guest can reach is
    /// unmapped while its slot exists), the region and the region offset of the slot's first
    /// byte (where its dirty log lands), and — under manual dirty-log protection — the pages
    /// the last log reported and nobody has cleared yet. QEMU: `KVMSlot.ram`, `.dirty_bmap`.
    struct Backing {
        let block: RAMBlock
        let region: MemoryRegion
        let regionOffset: UInt64
        var reported: [UInt64] = []
    }

    let vm: VirtualMachine
    let logger: Logger
    /// The slots, the free slot numbers, and what backs each slot.
    let state: Mutex<(slots: [Slot], free: [UInt32], blocks: [UInt32: Backing])>
    /// A guest that moves a BAR over RAM splits RAM sections and so adds and removes slots;
    /// doing that in a loop must not flood the log.
    let errorLog = RateLimitedLog()
    /// Slot numbers this accelerator uses (`0..<limit`), and what the kernel offers.
    package let limit: Int
    package let kernelLimit: Int
    /// Whether `KVM_CAP_MANUAL_DIRTY_LOG_PROTECT2` is on: logs are cleared with
    /// `KVM_CLEAR_DIRTY_LOG` (`logClear`) instead of by `KVM_GET_DIRTY_LOG` itself.
    let manualProtect: Bool
    /// Slots the kernel refused (at most `maxRecordedErrors`; the rest counted).
    let errors = Mutex<(list: [KVMMemoryError], more: Int)>(([], 0))
    static let maxRecordedErrors = 16

    /// The default budget of slot numbers: KVM offers tens of thousands, a pc machine needs a
    /// handful, and a guest moving BARs over RAM splits a section into at most three.
    public static let defaultLimit = 512

    init(vm: VirtualMachine, count: Int, logger: Logger, limit: Int? = nil, manualProtect: Bool = false) {
        self.vm = vm
        self.logger = logger
        kernelLimit = count
        self.limit = max(0, min(count, limit ?? Self.defaultLimit, Int(UInt16.max)))
        self.manualProtect = manualProtect
        state = Mutex(([], (0..<UInt32(self.limit)).reversed(), [:]))
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

    package var current: [Slot] { state.withLock { $0.slots.sorted { $0.guestAddress < $1.guestAddress } } }

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

    /// Maps a RAM/ROM section into a new slot, logging dirty pages from the start when the
    /// section already logs (`dirtyLogMask`). A refusal is a machine error (`fail`).
    func add(_ section: MemoryRegionSection, readOnly: Bool) {
        guard let block = section.region.ramBlock, let (gpa, size, delta) = Self.align(section) else { return }
        let offset = section.offsetWithinRegion &+ delta
        guard offset <= block.size, size <= block.size - offset else {
            fail(section, gpa, size, "map", .outsideBlock)
            return
        }
        // KVM maps whole host pages: RAM shown from an odd offset (an alias) cannot be a slot.
        guard offset % 4096 == 0 else {
            fail(section, gpa, size, "map", .unalignedHostAddress(regionOffset: offset))
            return
        }
        guard let slot = state.withLock({ $0.free.popLast() }) else {
            let inUse = state.withLock { $0.slots.count }
            fail(section, gpa, size, "map", .noFreeSlot(inUse: inUse, limit: limit, kernelLimit: kernelLimit))
            return
        }
        var s = Slot(slot: slot, guestAddress: gpa, size: size, hostAddress: block.hostAddress + offset, readOnly: readOnly)
        s.logDirtyPages = section.dirtyLogMask != 0
        do {
            // SAFETY: [offset, offset + size) lies inside the RAM block (checked above), which is
            // kept in `blocks` until the slot is deleted (`remove`, or deinit).
            try unsafe vm.setUserMemoryRegion(slot: slot, flags: s.flags, guestPhysicalAddress: gpa,
                                              size: size, hostAddress: s.hostAddress)
            state.withLock {
                $0.slots.append(s)
                $0.blocks[slot] = Backing(block: block, region: section.region, regionOffset: offset)
            }
        } catch {
            state.withLock { $0.free.append(slot) }
            fail(section, gpa, size, "map", .ioctl(error))
        }
    }

    /// Removes the slot that maps a section, first pulling its dirty log into the region if
    /// it logs (the writes since the last sync would be lost with the slot). QEMU: the
    /// removal half of `kvm_set_phys_mem()`.
    func remove(_ section: MemoryRegionSection) {
        guard let (gpa, size, _) = Self.align(section) else { return }
        if let logging = state.withLock({ st in st.slots.first { $0.guestAddress == gpa && $0.size == size } }),
           logging.logDirtyPages {
            pullLog(of: logging)
        }
        guard let s = state.withLock({ st -> Slot? in
            guard let i = st.slots.firstIndex(where: { $0.guestAddress == gpa && $0.size == size }) else { return nil }
            return st.slots.remove(at: i)
        }) else { return }
        do {
            // SAFETY: size 0 deletes the slot; it hands the guest no memory.
            try unsafe vm.setUserMemoryRegion(slot: s.slot, guestPhysicalAddress: gpa, size: 0, hostAddress: s.hostAddress)
        } catch {
            // The kernel still maps the block: keep the slot (and the block) as they are.
            state.withLock { $0.slots.append(s) }
            fail(section, gpa, size, "unmap", .ioctl(error))
            return
        }
        state.withLock {
            $0.free.append(s.slot)
            $0.blocks[s.slot] = nil
        }
    }
}

extension MemorySlots {
    /// Records a slot the kernel refused: listed (the first `maxRecordedErrors`), logged
    /// (rate-limited: a guest moving BARs over RAM may repeat it), and recorded on the VM so
    /// no vCPU enters the guest again. QEMU aborts here.
    func fail(_ section: MemoryRegionSection, _ gpa: UInt64, _ size: UInt64, _ action: String, _ cause: KVMMemoryError.Cause) {
        let error = KVMMemoryError(region: section.region.name, guestAddress: gpa, size: size, action: action, cause: cause)
        errors.withLock { e in
            if e.list.count < Self.maxRecordedErrors { e.list.append(error) } else { e.more += 1 }
        }
        vm.recordFailure("\(error)")
        errorLog.log({ logger.error("\($0)") }) { "\(error)" }
    }

    /// The refusals so far (the first `maxRecordedErrors`) and how many more there were.
    var recordedErrors: (list: [KVMMemoryError], more: Int) { errors.withLock { $0 } }
}
