import Memory
import Synchronization
import VMMSys

/// fw_cfg's DMA interface at I/O 0x514: the guest writes the (big-endian) guest-physical
/// address of an `FWCfgDmaAccess` {be32 control, be32 length, be64 address} — high half at
/// 0x514, low half at 0x518, which starts the transfer (an 8-byte write at 0x514 does both) —
/// and the device selects, reads or skips item bytes straight into guest memory, then writes
/// the control word back (0, or the error bit). Reading the port returns the signature
/// "QEMU CFG". QEMU: `fw_cfg_dma_mem_write()`, `fw_cfg_dma_transfer()`.
///
/// As QEMU: a descriptor that cannot be read gets the error bit stored into its control word
/// (if that word itself is RAM); READ wins over WRITE, WRITE over SKIP, and a control with none
/// of them transfers nothing; WRITE always fails after consuming the bytes it covered (no item
/// is writable here; QEMU's writable ones belong to devices this machine lacks, e.g. vmgenid);
/// a READ past the item's end gives zeros; the high half of the descriptor address is cleared
/// after each transfer.
///
/// Deliberately different from QEMU, so that one request cannot keep the vCPU busy for
/// seconds or wrap around the address space:
/// - a READ whose destination `[address, address + length)` wraps past 2^64 fails before any
///   byte is written (QEMU's `dma.address += len` wraps to 0 and carries on);
/// - a READ past the item's end fills zeros as QEMU's `dma_memory_set()` does, in bulk copies
///   of one reused 64 KiB block, stopping with the error bit where guest RAM ends (so a 4 GiB
///   read costs at most one pass over the guest's own RAM, as on QEMU);
/// - a SKIP past the item's end is O(1) (QEMU loops once).
/// Every guest-given address and length goes through the bounds-checked `GuestMemory`; each
/// failure also logs one rate-limited warning (QEMU logs none).
public final class FwCfgDMA: Sendable {
    /// The DMA address register's port on `pc`: FW_CFG_IO_BASE + 4.
    /// QEMU: fw_cfg_init_io_dma(FW_CFG_IO_BASE, FW_CFG_IO_BASE + 4, …).
    public static let defaultPort: UInt64 = 0x514
    static let controlError: UInt32 = 0x01, controlRead: UInt32 = 0x02, controlSkip: UInt32 = 0x04
    static let controlSelect: UInt32 = 0x08, controlWrite: UInt32 = 0x10
    static let signature: UInt64 = 0x5145_4d55_2043_4647       // "QEMU CFG"
    /// The zeros a READ past an item's end copies from, one chunk at a time.
    static let zeros = [UInt8](repeating: 0, count: chunkSize)
    /// Item bytes are copied in pieces of this size (bounds each temporary buffer).
    static let chunkSize = 0x10000

    /// The 8-byte big-endian DMA address register ("fwcfg.dma"): a write of the low half starts a
    /// transfer.
    public let region: MemoryRegion
    private let fwCfg: FwCfg
    private let memory: GuestMemory
    private let addressHigh = Atomic<UInt32>(0)
    private let errorLog = RateLimitedLog()
    private let failures = Atomic<UInt64>(0)

    /// Adds DMA to `fwCfg` (and announces it in the feature bitmap, bit 1).
    public init(fwCfg: FwCfg, memory: GuestMemory) {
        self.fwCfg = fwCfg
        self.memory = memory
        let owner = RegionOwner<FwCfgDMA>()
        region = .io(name: "fwcfg.dma", size: 8, ops: owner.ops(
            read: FwCfgDMA.read, write: FwCfgDMA.write, endianness: .big,
            valid: AccessConstraints(minAccessSize: 4, maxAccessSize: 8),
            implementation: AccessConstraints(minAccessSize: 4, maxAccessSize: 8)))
        owner.set(self)
        fwCfg.setInteger(FwCfg.Key.id, UInt32(3))
    }

    /// Maps the register into the I/O space `io` at `port`.
    public func map(into io: MemoryRegion, at port: UInt64 = FwCfgDMA.defaultPort) {
        io.addSubregion(region, at: port)
    }

    /// Transfers that ended with the error bit (each logged, rate-limited).
    public var failedTransfers: UInt64 { failures.load(ordering: .relaxed) }

    /// Reading the port gives the signature "QEMU CFG" (big-endian), in halves for 4-byte reads.
    private func read(_ offset: UInt64, _ size: Int) -> UInt64 {
        size == 8 ? Self.signature : (offset == 0 ? Self.signature >> 32 : Self.signature & 0xffff_ffff)
    }

    private func write(_ offset: UInt64, _ value: UInt64, _ size: Int) {
        if size == 8 && offset == 0 {
            addressHigh.store(0, ordering: .relaxed)
            transfer(at: value)
        } else if size == 4 && offset == 0 {
            addressHigh.store(UInt32(truncatingIfNeeded: value), ordering: .relaxed)
        } else if size == 4 && offset == 4 {
            // QEMU resets the latched address before each transfer.
            let high = addressHigh.exchange(0, ordering: .relaxed)
            transfer(at: UInt64(high) << 32 | (value & 0xffff_ffff))
        }
    }

    private static func be32(_ b: [UInt8], _ at: Int) -> UInt32 {
        guard at >= 0, at <= b.count - 4 else { return 0 }
        return b[at..<at + 4].reduce(0) { $0 << 8 | UInt32($1) }
    }

    /// One FWCfgDmaAccess. QEMU: `fw_cfg_dma_transfer()`.
    func transfer(at descriptor: UInt64) {
        guard let header = try? memory.read(at: descriptor, count: 16) else {
            fail(descriptor, "descriptor at 0x\(String(descriptor, radix: 16)) is not in RAM")
            return
        }
        let control = Self.be32(header, 0)
        let address = UInt64(Self.be32(header, 8)) << 32 | UInt64(Self.be32(header, 12))
        if control & Self.controlSelect != 0 { fwCfg.select(UInt16(truncatingIfNeeded: control >> 16)) }
        let read = control & Self.controlRead != 0
        let write = !read && control & Self.controlWrite != 0
        let skip = !read && !write && control & Self.controlSkip != 0
        let length = read || write || skip ? UInt64(Self.be32(header, 4)) : 0
        let problem: String?
        if read {
            problem = copyOut(length: length, to: address)
        } else if write {
            _ = fwCfg.advance(by: length)
            problem = length == 0 ? nil : "write of \(length) bytes refused (fw_cfg items are read-only)"
        } else {
            _ = fwCfg.advance(by: length)
            problem = nil
        }
        if let problem {
            fail(descriptor, problem)
        } else {
            try? memory.write([0, 0, 0, 0], at: descriptor)
        }
    }

    /// A READ of `length` bytes to `address`: the item's bytes, then zeros. Returns why it
    /// failed, or nil.
    private func copyOut(length: UInt64, to address: UInt64) -> String? {
        guard length > 0 else { return nil }
        guard address.addingReportingOverflow(length - 1).overflow == false else {
            return "read of \(length) bytes to 0x\(String(address, radix: 16)) wraps past 2^64"
        }
        var done: UInt64 = 0
        while done < length {
            let want = Int(min(length - done, UInt64(Self.chunkSize)))
            guard let bytes = fwCfg.take(upTo: want) else { break }        // past the item's end
            do {
                try memory.write(bytes, at: address + done)
            } catch {
                return "read to guest memory failed: \(error)"
            }
            done += UInt64(bytes.count)
        }
        // Past the item's end: zeros, as QEMU's dma_memory_set(), byte-exact up to where RAM
        // ends (a chunk that does not fit is retried in halves).
        var chunk = Self.chunkSize
        while done < length {
            let n = Int(min(length - done, UInt64(chunk)))
            do {
                try memory.write(n == Self.chunkSize ? Self.zeros : Array(Self.zeros[0..<n]), at: address + done)
                done += UInt64(n)
            } catch {
                guard n > 1 else { return "zero fill past the item's end failed: \(error)" }
                chunk = n / 2
            }
        }
        return nil
    }

    /// Stores the error bit in the descriptor's control word (QEMU does even when the
    /// descriptor could not be read) and logs, rate-limited.
    private func fail(_ descriptor: UInt64, _ problem: String) {
        failures.add(1, ordering: .relaxed)
        try? memory.write([0, 0, 0, UInt8(Self.controlError)], at: descriptor)
        errorLog.log({ devicesLogger.warning("\($0)") }) { "fw_cfg DMA: \(problem)" }
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

    /// Consumes up to `count` (≥ 1) bytes of the current item; nil once past its end (where
    /// the guest gets zeros, as on QEMU).
    func take(upTo count: Int) -> [UInt8]? {
        state.withLock { s in
            guard count > 0, s.offset < s.current.count else { return nil }
            let n = min(count, s.current.count - s.offset)
            defer { s.offset += n }
            return Array(s.current[s.offset..<s.offset + n])
        }
    }

    /// Moves the current offset forward by up to `count` bytes (not past the item's end);
    /// returns how many item bytes were passed. O(1) whatever `count`.
    @discardableResult
    func advance(by count: UInt64) -> Int {
        state.withLock { s in
            guard s.offset < s.current.count else { return 0 }
            let left = s.current.count - s.offset
            let n = count < UInt64(left) ? Int(count) : left
            s.offset += n
            return n
        }
    }
}
