internal import CKVM
import SystemPackage
import VMMSys

/// Dirty page logging (`KVM_MEM_LOG_DIRTY_PAGES` slots): reading the kernel's log of guest
/// writes, and re-arming it under manual protection. Documentation/virt/kvm/api.rst,
/// 4.8 KVM_GET_DIRTY_LOG, 4.117 KVM_CLEAR_DIRTY_LOG, 7.18 KVM_CAP_MANUAL_DIRTY_LOG_PROTECT2.
extension VirtualMachine {
    /// `KVM_ENABLE_CAP` on the VM: `capability` (a `KVM_CAP_*` number) with up to four
    /// arguments (EINVAL before any ioctl for more, or a negative number).
    /// QEMU: `kvm_vm_enable_cap()`.
    public func enableCapability(_ capability: Int32, arguments: [UInt64] = []) throws(SystemError) {
        guard capability >= 0, arguments.count <= 4 else {
            throw SystemError(operation: "KVM_ENABLE_CAP", arguments: "cap=\(capability) args=\(arguments.count)", errno: EINVAL)
        }
        var cap = kvm_enable_cap()
        cap.cap = UInt32(capability)
        let a = arguments + [UInt64](repeating: 0, count: 4 - arguments.count)
        cap.args = (a[0], a[1], a[2], a[3])
        try KVMIoctl.call(fileDescriptor, CKVM_ENABLE_CAP, "KVM_ENABLE_CAP",
                          "cap=\(capability) args=\(arguments.map { hex($0) })", value: &cap)
    }

    /// Turns on `KVM_CAP_MANUAL_DIRTY_LOG_PROTECT2` with `KVM_DIRTY_LOG_MANUAL_PROTECT_ENABLE`
    /// only: `getDirtyLog` then leaves the kernel's log (and the pages' write protection) as
    /// it is, and `clearDirtyLog` re-protects exactly the pages userspace has consumed.
    /// Deliberate difference: QEMU also asks for `KVM_DIRTY_LOG_INITIALLY_SET`, so the first
    /// log of a slot reports every page dirty (a migration's first pass wants them all);
    /// without it the first log holds exactly the pages written since logging started.
    /// Returns false (nothing enabled) when the kernel does not offer it.
    /// QEMU: the `KVM_CAP_MANUAL_DIRTY_LOG_PROTECT2` part of `kvm_init()`.
    public func enableManualDirtyLogProtection() throws(SystemError) -> Bool {
        let offered = UInt64(max(0, system.checkExtension(KVMCapability.manualDirtyLogProtect2)))
        guard offered & CKVM_DIRTY_LOG_MANUAL_PROTECT_ENABLE != 0 else { return false }
        try enableCapability(KVMCapability.manualDirtyLogProtect2, arguments: [CKVM_DIRTY_LOG_MANUAL_PROTECT_ENABLE])
        return true
    }

    /// `KVM_GET_DIRTY_LOG`: the pages of `slot` the guest wrote, one bit per page (bit i of
    /// word i / 64 is page i of the slot). Without manual protection the kernel clears its
    /// log and write-protects the pages again in the same call; with it the log stays until
    /// `clearDirtyLog`.
    ///
    /// The bitmap is sized from the slot as registered through `setUserMemoryRegion` (the
    /// kernel writes one bit per page of the slot, so a wrong size would be a buffer overrun):
    /// a slot this object did not register is refused with EINVAL before any ioctl. The kernel
    /// answers ENOENT for a slot that does not log dirty pages.
    /// QEMU: `kvm_slot_get_dirty_log()`.
    public func getDirtyLog(slot: UInt32) throws(SystemError) -> [UInt64] {
        // Held across the ioctl so the slot cannot change size under it.
        try slotPages.withLock { table throws(SystemError) -> [UInt64] in
            guard let pages = table[slot] else {
                throw SystemError(operation: "KVM_GET_DIRTY_LOG", arguments: "slot=\(slot): not a slot of this VM", errno: EINVAL)
            }
            var bitmap = [UInt64](repeating: 0, count: Int((pages + 63) / 64))
            let fd = fileDescriptor
            let result = unsafe bitmap.withUnsafeMutableBytes { raw in
                Result { () throws(SystemError) in
                    var log = unsafe kvm_dirty_log()
                    unsafe log.slot = slot
                    // SAFETY: the buffer holds ALIGN(pages, 64) bits, what the kernel writes for a
                    // slot of `pages` pages (kvm_dirty_bitmap_bytes), and outlives the call.
                    unsafe log.dirty_bitmap = raw.baseAddress
                    try unsafe KVMIoctl.call(fd, CKVM_GET_DIRTY_LOG, "KVM_GET_DIRTY_LOG", "slot=\(slot) pages=\(pages)", value: &log)
                }
            }
            try result.get()
            return bitmap
        }
    }

    /// `KVM_CLEAR_DIRTY_LOG` (manual protection on): for each bit set in `bitmap` (bit i is
    /// page `firstPage + i` of `slot`), clears the kernel's dirty bit and write-protects the
    /// page again, so the next write is logged. `firstPage` must be a multiple of 64 and
    /// `pages` a multiple of 64 or reach the slot's end (the kernel checks: EINVAL).
    /// QEMU: `kvm_log_clear_one_slot()`.
    public func clearDirtyLog(slot: UInt32, firstPage: UInt64, pages: UInt32, bitmap: [UInt64]) throws(SystemError) {
        let args = "slot=\(slot) first_page=\(firstPage) num_pages=\(pages)"
        guard UInt64(bitmap.count) * 64 >= UInt64(pages) else {
            throw SystemError(operation: "KVM_CLEAR_DIRTY_LOG", arguments: "\(args): bitmap of \(bitmap.count * 64) bits", errno: EINVAL)
        }
        var copy = bitmap
        let fd = fileDescriptor
        let result = unsafe copy.withUnsafeMutableBytes { raw in
            Result { () throws(SystemError) in
                var clear = unsafe kvm_clear_dirty_log()
                unsafe clear.slot = slot
                unsafe clear.num_pages = pages
                unsafe clear.first_page = firstPage
                // SAFETY: the kernel reads ALIGN(pages, 64) bits; the buffer holds at least that
                // many (checked above) and outlives the call.
                unsafe clear.dirty_bitmap = raw.baseAddress
                try unsafe KVMIoctl.call(fd, CKVM_CLEAR_DIRTY_LOG, "KVM_CLEAR_DIRTY_LOG", args, value: &clear)
            }
        }
        try result.get()
    }

    /// Pages of `slot` as registered through `setUserMemoryRegion` (nil: no such slot).
    package func slotPageCount(_ slot: UInt32) -> UInt64? { slotPages.withLock { $0[slot] } }

    // MARK: A VM that must not run

    /// Records why this VM cannot run as built (the first reason is kept): guest RAM the
    /// kernel refused to map, say. vCPU run loops check `failure` before entering the guest,
    /// so the machine stops with this reason instead of running a guest whose memory is not
    /// what it was given. QEMU aborts the process in the same places.
    package func recordFailure(_ reason: String) {
        failureStorage.withLock { if $0 == nil { $0 = reason } }
        failed.store(true, ordering: .releasing)
    }

    /// The recorded failure, if any (a single atomic load when there is none).
    package var failure: String? {
        guard failed.load(ordering: .acquiring) else { return nil }
        return failureStorage.withLock { $0 }
    }
}

/// Coalesced MMIO and PIO: zones whose guest writes the kernel appends to the VM's ring
/// instead of exiting. Documentation/virt/kvm/api.rst, 4.116 KVM_(UN)REGISTER_COALESCED_MMIO.
extension VirtualMachine {
    /// `KVM_REGISTER_COALESCED_MMIO`: guest writes to `[address, address + size)` (ports with
    /// `pio`, which needs `KVM_CAP_COALESCED_PIO`) are appended to the ring instead of exiting.
    /// QEMU: `kvm_coalesce_mmio_region()`, `kvm_coalesce_pio_add()`.
    public func registerCoalescedZone(address: UInt64, size: UInt32, pio: Bool) throws(SystemError) {
        try coalescedZone(CKVM_REGISTER_COALESCED_MMIO, "KVM_REGISTER_COALESCED_MMIO", address, size, pio)
    }

    /// `KVM_UNREGISTER_COALESCED_MMIO`: removes every zone of that kind lying inside the range.
    /// QEMU: `kvm_uncoalesce_mmio_region()`, `kvm_coalesce_pio_del()`.
    public func unregisterCoalescedZone(address: UInt64, size: UInt32, pio: Bool) throws(SystemError) {
        try coalescedZone(CKVM_UNREGISTER_COALESCED_MMIO, "KVM_UNREGISTER_COALESCED_MMIO", address, size, pio)
    }

    private func coalescedZone(_ request: UInt, _ name: String, _ address: UInt64, _ size: UInt32, _ pio: Bool) throws(SystemError) {
        var zone = kvm_coalesced_mmio_zone()
        zone.addr = address
        zone.size = size
        zone.pio = pio ? 1 : 0
        try KVMIoctl.call(fileDescriptor, request, name, "addr=\(hex(address)) size=\(hex(size)) pio=\(pio ? 1 : 0)", value: &zone)
    }

    /// The VM's coalesced ring (mapped with the first vCPU), or nil before any vCPU exists or
    /// without `KVM_CAP_COALESCED_MMIO`. QEMU: `s->coalesced_mmio_ring`, set in `kvm_init_vcpu()`.
    public var coalescedMMIORing: CoalescedMMIORing? { ringStorage.withLock { $0 } }
}
