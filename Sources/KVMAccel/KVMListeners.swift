import Memory

/// The accelerator's listener on the memory address space: RAM/ROM sections become memory
/// slots (logging dirty pages while the memory API logs them), ioeventfds become MMIO
/// `KVM_IOEVENTFD`s, coalesced ranges coalesced MMIO zones. Priority 10 as QEMU's KVM listener.
/// QEMU: `kvm_region_add()`/`kvm_region_del()`, `kvm_log_start()`/`kvm_log_stop()`,
/// `kvm_log_sync()`, `kvm_log_clear()`, `kvm_mem_ioeventfd_add()`/`_del()`,
/// `kvm_coalesce_mmio_region()`/`kvm_uncoalesce_mmio_region()`.
final class KVMMemoryListener: MemoryListener, @unchecked Sendable {
    // @unchecked: immutable after init; the accelerator is Sendable.
    let accelerator: KVMAccelerator
    let handlesEventfds: Bool
    var priority: Int { 10 }

    init(accelerator: KVMAccelerator, eventfds: Bool) {
        self.accelerator = accelerator
        self.handlesEventfds = eventfds
    }

    func regionAdd(_ section: MemoryRegionSection) {
        guard let mapping = slotMapping(section) else { return }
        accelerator.slots.add(section, readOnly: mapping)
    }

    func regionDel(_ section: MemoryRegionSection) {
        guard slotMapping(section) != nil else { return }
        accelerator.slots.remove(section)
    }

    /// Whether a section becomes a slot (nil: no), and if so whether read-only. As QEMU, the
    /// slot is read-only when the region itself is (ROM, or RAM made read-only), not when only
    /// an alias or container above it is: RAM shown through a read-only alias (the i440FX's
    /// PAM "read-only" windows over 0xc0000-0xfffff) is a writable slot, so guest writes land
    /// in RAM under KVM exactly as on QEMU. This matters beyond fidelity: KVM's instruction
    /// emulator sets a descriptor's accessed bit when it loads a segment, and with the GDT in a
    /// read-only slot (QEMU's multiboot option ROM keeps its GDT in the ROM it runs from) a far
    /// jump is retried forever inside KVM_RUN on a host that emulates supervisor code.
    /// Read-only RAM without KVM_CAP_READONLY_MEM stays unmapped so guest reads and writes exit
    /// as MMIO. QEMU: kvm_mem_flags() (reads `mr->readonly`, not the section's), kvm_set_phys_mem().
    private func slotMapping(_ section: MemoryRegionSection) -> Bool? {
        guard section.region.isRAM else { return nil }
        if section.region.isReadOnly { return accelerator.readOnlyMemory ? true : nil }
        return false
    }

    /// A client started logging a mapped range: set `KVM_MEM_LOG_DIRTY_PAGES` on its slot
    /// (only when no client logged before, as QEMU's `kvm_log_start()` returns for `old != 0`).
    func logStart(_ section: MemoryRegionSection, old: UInt8, new: UInt8) {
        guard old == 0 else { return }
        accelerator.slots.updateLogging(section)
    }

    /// The last client stopped: clear the flag (QEMU's `kvm_log_stop()` returns for `new != 0`).
    func logStop(_ section: MemoryRegionSection, old: UInt8, new: UInt8) {
        guard new == 0 else { return }
        accelerator.slots.updateLogging(section)
    }

    func logSync(_ section: MemoryRegionSection) {
        accelerator.slots.syncDirtyLog(section)
    }

    func logClear(_ section: MemoryRegionSection) {
        accelerator.slots.clearDirtyLog(section)
    }

    func eventfdAdd(_ ioeventfd: MemoryRegionIoeventfd, in addressSpace: AddressSpace) {
        accelerator.setIoeventfd(ioeventfd, in: addressSpace, pio: false, assign: true)
    }

    func eventfdDel(_ ioeventfd: MemoryRegionIoeventfd, in addressSpace: AddressSpace) {
        accelerator.setIoeventfd(ioeventfd, in: addressSpace, pio: false, assign: false)
    }

    func coalescedIOAdd(_ section: MemoryRegionSection, address: UInt64, length: UInt64) {
        accelerator.coalesced.add(address: address, length: length, pio: false, region: section.region.name)
    }

    func coalescedIODel(_ section: MemoryRegionSection, address: UInt64, length: UInt64) {
        accelerator.coalesced.remove(address: address, length: length, pio: false)
    }
}

/// The accelerator's listener on the I/O address space: ioeventfds become PIO
/// `KVM_IOEVENTFD`s (ports have no memory slots), coalesced ranges coalesced PIO zones
/// (with `KVM_CAP_COALESCED_PIO`). QEMU: `kvm_io_listener`, `kvm_io_ioeventfd_add()`/`_del()`
/// → `kvm_set_ioeventfd_pio()`, and `kvm_coalesced_pio_listener` (one listener here).
final class KVMPortIOListener: MemoryListener, @unchecked Sendable {
    let accelerator: KVMAccelerator
    let handlesEventfds: Bool
    var priority: Int { 10 }

    init(accelerator: KVMAccelerator, eventfds: Bool) {
        self.accelerator = accelerator
        self.handlesEventfds = eventfds
    }

    func eventfdAdd(_ ioeventfd: MemoryRegionIoeventfd, in addressSpace: AddressSpace) {
        accelerator.setIoeventfd(ioeventfd, in: addressSpace, pio: true, assign: true)
    }

    func eventfdDel(_ ioeventfd: MemoryRegionIoeventfd, in addressSpace: AddressSpace) {
        accelerator.setIoeventfd(ioeventfd, in: addressSpace, pio: true, assign: false)
    }

    func coalescedIOAdd(_ section: MemoryRegionSection, address: UInt64, length: UInt64) {
        accelerator.coalesced.add(address: address, length: length, pio: true, region: section.region.name)
    }

    func coalescedIODel(_ section: MemoryRegionSection, address: UInt64, length: UInt64) {
        accelerator.coalesced.remove(address: address, length: length, pio: true)
    }
}
