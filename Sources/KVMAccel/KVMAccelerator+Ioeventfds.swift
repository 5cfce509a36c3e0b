import KVM
import Memory
import VMMSys
#if canImport(Glibc)
import Glibc
#endif

/// ioeventfds in the kernel, with a fallback that is complete: what the kernel refuses is
/// signalled by userspace dispatch, retried when what was in its way goes away, and every
/// conflict and failed deassign is reported. QEMU: `kvm_set_ioeventfd_mmio()` /
/// `kvm_set_ioeventfd_pio()`, whose callers abort on any failure.
extension KVMAccelerator {
    /// Registers or removes one ioeventfd in the kernel.
    ///
    /// - Assign refused: logged with the ioctl, its arguments and errno; an EEXIST names the
    ///   ioeventfd in the way and both owners (`ioeventfdConflicts`); the ioeventfd is left to
    ///   userspace signalling and recorded for a retry.
    /// - Deassign done: refusals at the same bus address (and refusals for want of room) are
    ///   retried; one the kernel takes now stops being signalled by userspace.
    /// - Deassign refused: counted and logged (the kernel may still signal that eventfd).
    /// - Deleting a refused one forgets the refusal (the kernel never had it).
    func setIoeventfd(_ fd: MemoryRegionIoeventfd, in space: AddressSpace, pio: Bool, assign: Bool) {
        if !assign {
            let wasRefused = ioeventfdRegistry.forgetRefusal(fd, in: space, pio: pio)
            // A refusal also listed by the space (or only there, past our cap): forget it there.
            if space.ioeventfdAccepted(fd) || wasRefused { return }
        }
        if fd.size == 0 && !anyLengthIoeventfds {
            logLimited("ioeventfd \(fd) in \(space.name): zero-length ioeventfds need KVM_CAP_IOEVENTFD_ANY_LENGTH; userspace will signal it")
            refuse(fd, in: space)
            return
        }
        do {
            try kernelIoeventfd(fd, pio: pio, assign: assign)
        } catch {
            if assign {
                refused(fd, in: space, pio: pio, error: error)
            } else {
                ioeventfdStats.withLock { $0.deassignFailures += 1 }
                ioeventfdRegistry.released(fd, pio: pio)
                logLimited("\(error): deassign of ioeventfd \(fd) of \(owner(of: fd, in: space)) failed; the kernel may still signal it")
            }
            return
        }
        if assign {
            ioeventfdStats.withLock { $0.assigned += 1 }
            ioeventfdRegistry.held(fd, pio: pio, owner: owner(of: fd, in: space))
        } else {
            ioeventfdStats.withLock { $0.deassigned += 1 }
            ioeventfdRegistry.released(fd, pio: pio)
            retryRefusals(after: .init(pio: pio, address: fd.start))
        }
    }

    /// `KVM_IOEVENTFD` for `fd` on the PIO or MMIO bus.
    private func kernelIoeventfd(_ fd: MemoryRegionIoeventfd, pio: Bool, assign: Bool) throws(SystemError) {
        let address: IoEventAddress = pio ? .pio(fd.start) : .mmio(fd.start)
        try vm.ioeventfd(fd.notifier, address: address, length: UInt32(truncatingIfNeeded: fd.size),
                         datamatch: fd.matchData ? fd.data : nil, deassign: !assign)
    }

    /// The kernel refused to assign `fd`: report it (with the conflict for EEXIST, which a
    /// guest provokes by moving BARs onto each other), leave it to userspace, record it.
    private func refused(_ fd: MemoryRegionIoeventfd, in space: AddressSpace, pio: Bool, error: SystemError) {
        var why = "\(error)"
        if error.errno == EEXIST {
            let mine = owner(of: fd, in: space)
            let holders = ioeventfdRegistry.collisions(with: fd, pio: pio)
            let conflict = IoeventfdConflict(refused: fd, refusedOwner: mine, holder: holders.first?.fd,
                                             holderOwner: holders.first?.owner, pio: pio)
            ioeventfdRegistry.conflict(conflict)
            ioeventfdStats.withLock { $0.conflicts += 1 }
            why += ": \(conflict)"
        }
        logLimited("\(why); userspace will signal this ioeventfd instead")
        refuse(fd, in: space)
        if !ioeventfdRegistry.refused(fd, in: space, pio: pio, errno: error.errno) {
            ioeventfdStats.withLock { $0.droppedRefusals += 1 }
        }
    }

    /// Retries the refusals the kernel may take now that it let go of an ioeventfd.
    private func retryRefusals(after address: IoeventfdRegistry.BusAddress) {
        for r in ioeventfdRegistry.takeRetries(after: address) {
            do {
                try kernelIoeventfd(r.fd, pio: r.pio, assign: true)
            } catch {
                ioeventfdRegistry.refused(r.fd, in: r.space, pio: r.pio, errno: error.errno)
                continue
            }
            r.space.ioeventfdAccepted(r.fd)
            ioeventfdRegistry.held(r.fd, pio: r.pio, owner: owner(of: r.fd, in: r.space))
            ioeventfdStats.withLock { $0.assigned += 1; $0.retried += 1 }
            logger.info("ioeventfd \(r.fd) of \(owner(of: r.fd, in: r.space)) is now taken by the kernel")
        }
    }

    private func refuse(_ fd: MemoryRegionIoeventfd, in space: AddressSpace) {
        ioeventfdStats.withLock { $0.refused += 1 }
        space.ioeventfdRefused(fd)
    }

    /// "'region' in space": the region whose ioeventfd this is — the one among the flat
    /// ranges near its address (an ioeventfd of at most 8 bytes reaches at most 7 bytes to the
    /// left of its range) that lists it at that absolute address — else the region showing
    /// the address, else "?".
    func owner(of fd: MemoryRegionIoeventfd, in space: AddressSpace) -> String {
        let view = space.currentMap
        let low = fd.start >= 8 ? fd.start - 8 : 0
        // The first range ending after `low` (ranges are sorted and disjoint).
        var lo = 0, hi = view.ranges.count
        while lo < hi {
            let mid = (lo + hi) / 2
            if view.ranges[mid].end <= UInt128(low) { lo = mid + 1 } else { hi = mid }
        }
        var i = lo
        while i < view.ranges.count, UInt128(view.ranges[i].start) <= UInt128(fd.start) + 8 {
            let fr = view.ranges[i]
            let shift = Int128(fr.start) - Int128(fr.offsetInRegion)
            if fr.region.ioeventfds.contains(where: { e in
                Int128(e.start) + shift == Int128(fd.start) && e.size == fd.size && e.matchData == fd.matchData
                    && (!e.matchData || e.data == fd.data) && e.notifier === fd.notifier
            }) {
                return "'\(fr.region.name)' in \(space.name)"
            }
            i += 1
        }
        guard let j = view.lookup(fd.start) else { return "'?' in \(space.name)" }
        return "'\(view.ranges[j].region.name)' in \(space.name)"
    }
}
