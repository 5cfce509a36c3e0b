internal import CVirtIO
import Devices
import Memory
import Synchronization

/// VIRTIO_PCI_CAP_PCI_CFG (virtio 1.x §4.1.4.9): a vendor capability in configuration space
/// through which a driver reaches the modern structures without mapping BAR 4 (firmware does,
/// when the BAR lies above 4 GiB). The driver writes `cap.offset` and `cap.length`, then reads
/// or writes `pci_cfg_data`; every configuration access that overlaps `pci_cfg_data` makes one
/// access of `cap.length` bytes at `cap.offset` into the structure that holds it, dispatched to
/// that structure's region ops as a BAR access would be.
///
/// As QEMU 7.2: only lengths 1, 2 and 4 do anything; the offset is rounded down to a multiple
/// of the length; an access that does not lie wholly inside one structure (common, ISR,
/// device, notify) is ignored; `cap.bar` is not consulted (the offset always names a place
/// in the modern BAR); a read stores the value in `pci_cfg_data` before the configuration
/// read returns it, and a read that reaches nothing leaves `pci_cfg_data` as it was. Every
/// field is guest-controlled, so everything is range-checked and nothing can trap.
/// QEMU: virtio_pci_device_plugged() (the capability and its write mask),
/// virtio_write_config(), virtio_read_config(), virtio_address_space_lookup(),
/// virtio_address_space_write() / _read().
extension VirtIOPCI {
    /// cfg_type of the configuration-access capability: VIRTIO_PCI_CAP_PCI_CFG.
    static let pciCfgType = UInt8(VIRTIO_PCI_CAP_PCI_CFG)
    /// Field offsets within the capability: cap.bar, cap.offset, cap.length (VIRTIO_PCI_CAP_*),
    /// pci_cfg_data (struct virtio_pci_cfg_cap).
    static let pciCfgBarField = Int(VIRTIO_PCI_CAP_BAR), pciCfgOffsetField = Int(VIRTIO_PCI_CAP_OFFSET)
    static let pciCfgLengthField = Int(VIRTIO_PCI_CAP_LENGTH), pciCfgDataField = CVIRTIO_PCI_CFG_CAP_DATA
    /// The capability's length: sizeof(struct virtio_pci_cfg_cap).
    static let pciCfgLength = CVIRTIO_PCI_CFG_CAP_SIZE

    /// The capability as QEMU adds it: all fields zero (bar 0), and writable bar, offset,
    /// length and data (the cfg_mask of virtio_pci_device_plugged()).
    static func pciCfgCapability() -> (bytes: [UInt8], writeMask: [UInt8]) {
        var bytes = [UInt8](repeating: 0, count: pciCfgLength)
        bytes[Int(VIRTIO_PCI_CAP_VNDR)] = UInt8(PCI_CAP_ID_VNDR)
        bytes[Int(VIRTIO_PCI_CAP_LEN)] = UInt8(pciCfgLength)
        bytes[Int(VIRTIO_PCI_CAP_CFG_TYPE)] = pciCfgType
        var mask = [UInt8](repeating: 0, count: pciCfgLength)
        mask[pciCfgBarField] = 0xff
        for i in pciCfgOffsetField..<pciCfgLength { mask[i] = 0xff }
        return (bytes, mask)
    }

    /// Whether a configuration access of `size` bytes at `offset` overlaps `pci_cfg_data` of
    /// the capability at `capability` (0: none). QEMU: ranges_overlap() in
    /// virtio_write_config() / virtio_read_config().
    static func touchesPCICfgData(capability: Int, offset: Int, size: Int) -> Bool {
        guard capability > 0, (0..<256).contains(offset), (1...4).contains(size) else { return false }
        let data = capability + pciCfgDataField
        return offset < data + 4 && data < offset + size
    }

    /// Where a window access of `length` bytes at `offset` lands: the structure's region and
    /// the offset within it, or nil when the length is not 1, 2 or 4 or no structure holds
    /// the whole access. QEMU: the length check of virtio_write_config(), the alignment of
    /// virtio_address_space_write(), virtio_address_space_lookup().
    func pciCfgTarget(offset: UInt32, length: UInt32) -> (ops: MemoryRegionOps, offset: UInt64, size: Int)? {
        guard length == 1 || length == 2 || length == 4 else { return nil }
        let aligned = UInt64(offset & ~(length - 1))
        let end = UInt128(aligned) + UInt128(length)     // cannot overflow: both below 2^33
        for region in modernRegion.subregions {
            let start = region.address
            guard aligned >= start, end <= UInt128(start) + region.size, case .io(let ops) = region.kind else { continue }
            return (ops, aligned - start, Int(length))
        }
        return nil
    }

    /// Whether the region takes the access, as the memory core would decide for a BAR access.
    /// QEMU: memory_region_access_valid() in memory_region_dispatch_read/write().
    static func accepts(_ ops: MemoryRegionOps, _ offset: UInt64, _ size: Int, isWrite: Bool) -> Bool {
        if let accepts = ops.accepts, !accepts(offset, size, isWrite) { return false }
        if !ops.valid.unaligned && offset & UInt64(size - 1) != 0 { return false }
        if ops.valid.maxAccessSize != 0 && size > ops.valid.maxAccessSize { return false }
        return size >= max(ops.valid.minAccessSize, 1)
    }

    /// The window access a configuration access at `offset` of `size` bytes implies, made
    /// after the write itself (`isWrite`) or before the read returns. Reads and writes the
    /// capability's fields through PCIDevice's configuration space, never through this
    /// device's overrides. QEMU: virtio_write_config(), virtio_read_config().
    func pciCfgWindow(offset: Int, size: Int, isWrite: Bool,
                      read: (_ offset: Int, _ size: Int) -> UInt32,
                      write: (_ offset: Int, _ value: UInt32, _ size: Int) -> Void) {
        let capability = pciCfgCapabilityOffset.load(ordering: .acquiring)
        guard Self.touchesPCICfgData(capability: capability, offset: offset, size: size) else { return }
        let target = pciCfgTarget(offset: read(capability + Self.pciCfgOffsetField, 4),
                                  length: read(capability + Self.pciCfgLengthField, 4))
        guard let target, Self.accepts(target.ops, target.offset, target.size, isWrite: isWrite) else { return }
        let data = capability + Self.pciCfgDataField
        if isWrite {
            target.ops.write(target.offset, UInt64(read(data, target.size)), target.size)
        } else {
            write(data, UInt32(truncatingIfNeeded: target.ops.read(target.offset, target.size)), target.size)
        }
    }
}
