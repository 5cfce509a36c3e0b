import Memory
import Synchronization

/// fw_cfg's DMA interface at I/O 0x514: the guest writes the (big-endian) guest-physical
/// address of an `FWCfgDmaAccess` {be32 control, be32 length, be64 address} — high half at
/// 0x514, low half at 0x518, which starts the transfer — and the device selects, reads or
/// skips item bytes straight into guest memory, then writes the control word back (0, or the
/// error bit). Reading the port returns the signature "QEMU CFG". Every guest-given address
/// and length goes through the bounds-checked `GuestMemory`. QEMU: `fw_cfg_dma_transfer()`.
public final class FwCfgDMA: Sendable {
    public static let defaultPort: UInt64 = 0x514
    static let controlError: UInt32 = 0x01, controlRead: UInt32 = 0x02, controlSkip: UInt32 = 0x04
    static let controlSelect: UInt32 = 0x08, controlWrite: UInt32 = 0x10
    static let signature: UInt64 = 0x5145_4d55_2043_4647       // "QEMU CFG"

    public let region: MemoryRegion
    private let fwCfg: FwCfg
    private let memory: GuestMemory
    private let addressHigh = Atomic<UInt32>(0)

    /// Adds DMA to `fwCfg` (and announces it in the feature bitmap, bit 1).
    public init(fwCfg: FwCfg, memory: GuestMemory) {
        self.fwCfg = fwCfg
        self.memory = memory
        let ref = DeviceRef<FwCfgDMA>()
        region = .io(name: "fwcfg.dma", size: 8, ops: MemoryRegionOps(
            read: { offset, size in
                let v = FwCfgDMA.signature
                return size == 8 ? v : (offset == 0 ? v >> 32 : v & 0xffff_ffff)
            },
            write: { offset, value, size in ref.value?.write(offset, value, size) },
            endianness: .big,
            valid: AccessConstraints(minAccessSize: 4, maxAccessSize: 8),
            implementation: AccessConstraints(minAccessSize: 4, maxAccessSize: 8)))
        ref.set(self)
        fwCfg.setInteger(FwCfg.Key.id, UInt32(3))
    }

    public func map(into io: MemoryRegion, at port: UInt64 = FwCfgDMA.defaultPort) {
        io.addSubregion(region, at: port)
    }

    private func write(_ offset: UInt64, _ value: UInt64, _ size: Int) {
        if size == 8 && offset == 0 {
            transfer(at: value)
        } else if size == 4 && offset == 0 {
            addressHigh.store(UInt32(truncatingIfNeeded: value), ordering: .relaxed)
        } else if size == 4 && offset == 4 {
            transfer(at: UInt64(addressHigh.load(ordering: .relaxed)) << 32 | (value & 0xffff_ffff))
        }
    }

    private func be32(_ b: [UInt8], _ at: Int) -> UInt32 { b[at..<at + 4].reduce(0) { $0 << 8 | UInt32($1) } }

    /// One FWCfgDmaAccess. QEMU: `fw_cfg_dma_transfer()`.
    func transfer(at descriptor: UInt64) {
        guard let header = try? memory.read(at: descriptor, count: 16) else { return }
        let control = be32(header, 0)
        var length = be32(header, 4)
        var address = UInt64(be32(header, 8)) << 32 | UInt64(be32(header, 12))
        if control & Self.controlSelect != 0 { fwCfg.select(UInt16(truncatingIfNeeded: control >> 16)) }
        let read = control & Self.controlRead != 0, write = control & Self.controlWrite != 0
        var failed = false
        if read || write || control & Self.controlSkip != 0 {
            while length > 0 && !failed {
                let (chunk, bytes) = fwCfg.take(upTo: Int(min(length, 65536)))
                if write { failed = true; break }                   // items are read-only, as QEMU's
                if read {
                    do { try memory.write(bytes ?? [UInt8](repeating: 0, count: chunk), at: address) } catch { failed = true }
                }
                let (next, wrapped) = address.addingReportingOverflow(UInt64(chunk))
                if wrapped { failed = true }
                address = next
                length -= UInt32(chunk)
            }
        }
        let status: UInt32 = failed ? Self.controlError : 0
        try? memory.write([UInt8((status >> 24) & 0xff), UInt8((status >> 16) & 0xff), UInt8((status >> 8) & 0xff), UInt8(status & 0xff)],
                          at: descriptor)
    }
}

extension FwCfg {
    /// Selects item `key` (as a selector write). QEMU: `fw_cfg_select()`.
    func select(_ key: UInt16) {
        let key = key & ~Key.writeChannel
        state.withLock { s in
            s.current = s.items[key] ?? []
            s.offset = 0
        }
    }

    /// Consumes up to `count` bytes of the current item: how many the transfer advances, and
    /// the item's bytes (nil once past its end: the guest gets zeros, as QEMU gives).
    func take(upTo count: Int) -> (Int, [UInt8]?) {
        state.withLock { s in
            guard s.offset < s.current.count else { return (count, nil) }
            let n = min(count, s.current.count - s.offset)
            defer { s.offset += n }
            return (n, Array(s.current[s.offset..<s.offset + n]))
        }
    }
}
