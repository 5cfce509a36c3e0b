internal import CKVM
import SystemPackage
import VMMSys

/// Where an ioeventfd listens: a port I/O address or a guest physical MMIO address.
public enum IoEventAddress: Sendable, Hashable {
    /// A port on the I/O bus (`KVM_IOEVENTFD_FLAG_PIO` set).
    case pio(UInt64)
    /// A guest-physical address on the MMIO bus (no flag).
    case mmio(UInt64)
}

/// One entry of the GSI routing table (`struct kvm_irq_routing_entry`).
public enum GSIRoute: Sendable, Hashable {
    /// GSI `gsi` drives `pin` of in-kernel `chip` (0 = master PIC, 1 = slave PIC, 2 = IOAPIC).
    case irqchip(gsi: UInt32, chip: UInt32, pin: UInt32)
    /// GSI `gsi` sends the MSI message (address, data) — the route behind an MSI irqfd.
    case msi(gsi: UInt32, addressLo: UInt32, addressHi: UInt32, data: UInt32)

    /// The GSI the entry routes (`kvm_irq_routing_entry.gsi`).
    public var gsi: UInt32 {
        switch self {
        case .irqchip(let gsi, _, _), .msi(let gsi, _, _, _): gsi
        }
    }

    var raw: kvm_irq_routing_entry {
        var e = kvm_irq_routing_entry()
        e.gsi = gsi
        // SAFETY (the union writes): `type` says which member of `u` the kernel reads, and each
        // case writes that member of a zeroed entry.
        switch self {
        case .irqchip(_, let chip, let pin):
            e.type = UInt32(KVM_IRQ_ROUTING_IRQCHIP)
            unsafe e.u.irqchip.irqchip = chip
            unsafe e.u.irqchip.pin = pin
        case .msi(_, let lo, let hi, let data):
            e.type = UInt32(KVM_IRQ_ROUTING_MSI)
            unsafe e.u.msi.address_lo = lo
            unsafe e.u.msi.address_hi = hi
            unsafe e.u.msi.data = data
        }
        return e
    }
}

extension VirtualMachine {
    /// `KVM_IOEVENTFD`: a guest write of `length` bytes to `address` signals `fileDescriptor`
    /// (an eventfd) inside the kernel instead of exiting to userspace.
    ///
    /// - `length`: 1, 2, 4 or 8; 0 matches any length (MMIO only, without `datamatch`).
    /// - `datamatch`: only a write whose value equals this fires. The kernel reads the
    ///   written bytes as a *host-order* integer of `length` bytes and compares it with this
    ///   u64, so pass the value as the guest wrote it (e.g. 0xfa for `out dx, al` with
    ///   al = 0xfa), not its byte image. Non-matching writes exit as usual.
    /// - `deassign`: remove a registration made with the same arguments.
    ///
    /// Registering the same (address, length, datamatch) twice fails with EEXIST.
    /// QEMU: `kvm_set_ioeventfd_mmio()`, `kvm_set_ioeventfd_pio()`.
    public func ioeventfd(
        fileDescriptor fd: FileDescriptor, address: IoEventAddress, length: UInt32,
        datamatch: UInt64? = nil, deassign: Bool = false
    ) throws(SystemError) {
        var flags: UInt32 = 0
        var names: [String] = []
        let addr: UInt64
        switch address {
        case .pio(let a): addr = a; flags |= CKVM_IOEVENTFD_FLAG_PIO; names.append("pio")
        case .mmio(let a): addr = a; names.append("mmio")
        }
        if datamatch != nil { flags |= CKVM_IOEVENTFD_FLAG_DATAMATCH; names.append("datamatch") }
        if deassign { flags |= CKVM_IOEVENTFD_FLAG_DEASSIGN; names.append("deassign") }
        var args = kvm_ioeventfd()
        args.datamatch = datamatch ?? 0
        args.addr = addr
        args.len = length
        args.fd = fd.rawValue
        args.flags = flags
        let match = datamatch.map { " datamatch=\(hex($0))" } ?? ""
        try KVMIoctl.call(
            fileDescriptor, CKVM_IOEVENTFD, "KVM_IOEVENTFD",
            "addr=\(hex(addr)) len=\(length)\(match) flags=\(names.joined(separator: "|")) fd=\(fd.rawValue)",
            value: &args)
    }

    /// `KVM_IOEVENTFD` with an `EventNotifier`; see `ioeventfd(fileDescriptor:…)`.
    public func ioeventfd(
        _ notifier: EventNotifier, address: IoEventAddress, length: UInt32,
        datamatch: UInt64? = nil, deassign: Bool = false
    ) throws(SystemError) {
        try ioeventfd(fileDescriptor: notifier.fileDescriptor, address: address, length: length,
                      datamatch: datamatch, deassign: deassign)
    }

    /// `KVM_IRQFD`: signalling `notifier` raises `gsi` inside the kernel (an edge, or with
    /// `resample` a level that the kernel lowers on EOI and reports by signalling
    /// `resample`, so the device can re-assert it). `deassign` removes the binding.
    /// QEMU: `kvm_irqchip_assign_irqfd()`.
    public func irqfd(
        notifier: EventNotifier, gsi: UInt32, resample: EventNotifier? = nil, deassign: Bool = false
    ) throws(SystemError) {
        var args = kvm_irqfd()
        args.fd = UInt32(bitPattern: notifier.fileDescriptor.rawValue)
        args.gsi = gsi
        var names: [String] = []
        if let resample {
            args.flags |= CKVM_IRQFD_FLAG_RESAMPLE
            args.resamplefd = UInt32(bitPattern: resample.fileDescriptor.rawValue)
            names.append("resample")
        }
        if deassign { args.flags |= CKVM_IRQFD_FLAG_DEASSIGN; names.append("deassign") }
        let resampleText = resample.map { " resamplefd=\($0.fileDescriptor.rawValue)" } ?? ""
        try KVMIoctl.call(
            fileDescriptor, CKVM_IRQFD, "KVM_IRQFD",
            "fd=\(notifier.fileDescriptor.rawValue) gsi=\(gsi)\(resampleText) flags=\(names.isEmpty ? "0" : names.joined(separator: "|"))",
            value: &args)
    }

    /// `KVM_SET_GSI_ROUTING`: replaces the whole routing table with `routes` (so a caller
    /// keeps every route it wants, the irqchip's defaults included).
    /// QEMU: `kvm_irqchip_commit_routes()`.
    public func setGSIRouting(_ routes: [GSIRoute]) throws(SystemError) {
        let header = MemoryLayout<kvm_irq_routing>.size
        let stride = MemoryLayout<kvm_irq_routing_entry>.stride
        let bytes = header + routes.count * stride
        var storage = [UInt64](repeating: 0, count: (bytes + 7) / 8)
        let fd = fileDescriptor
        // SAFETY: the storage was sized for the kvm_irq_routing header and routes.count entries,
        // and `nr` says exactly that many.
        let result = unsafe storage.withUnsafeMutableBytes { raw in
            unsafe raw.storeBytes(of: UInt32(routes.count), as: UInt32.self)
            for (i, route) in routes.enumerated() {
                unsafe raw.storeBytes(of: route.raw, toByteOffset: header + i * stride, as: kvm_irq_routing_entry.self)
            }
            return Result { () throws(SystemError) in
                try unsafe KVMIoctl.call(fd, CKVM_SET_GSI_ROUTING, "KVM_SET_GSI_ROUTING",
                                         "nr=\(routes.count)", pointer: raw.baseAddress!)
            }
        }
        _ = try result.get()
    }

    /// `KVM_SIGNAL_MSI`: injects one MSI. Returns false when the guest blocked it
    /// (masked/not delivered), true when delivered. QEMU: `kvm_irqchip_send_msi()`.
    @discardableResult
    public func signalMSI(address: UInt64, data: UInt32) throws(SystemError) -> Bool {
        var msi = kvm_msi()
        msi.address_lo = UInt32(truncatingIfNeeded: address)
        msi.address_hi = UInt32(truncatingIfNeeded: address >> 32)
        msi.data = data
        let r = try KVMIoctl.call(fileDescriptor, CKVM_SIGNAL_MSI, "KVM_SIGNAL_MSI",
                                  "addr=\(hex(address)) data=\(hex(data))", value: &msi)
        return r > 0
    }

    /// `KVM_IRQ_LINE`: sets GSI `irq` to `level` on the in-kernel irqchip (ISA/PCI INTx).
    /// QEMU: `kvm_set_irq()`.
    public func irqLine(irq: UInt32, level: Bool) throws(SystemError) {
        var args = kvm_irq_level()
        args.irq = irq
        args.level = level ? 1 : 0
        try KVMIoctl.call(fileDescriptor, CKVM_IRQ_LINE, "KVM_IRQ_LINE", "irq=\(irq) level=\(level ? 1 : 0)",
                          value: &args)
    }
}
