internal import CVirtIO
import Logging
import Memory
import Synchronization
import VMMSys

/// The virtio block device over a raw image file: read, write, flush, get-id, discard and
/// write-zeroes, served on the I/O thread with positioned I/O (`pread`/`pwrite`).
///
/// Requests follow QEMU's `virtio_blk_handle_request()`: a chain without a readable header or
/// a writable status byte breaks the device (`virtio_error()`); a request outside the disk,
/// misaligned, or beyond the limits the device advertises completes with IOERR; an unknown
/// type with UNSUPP. Data moves in chunks of at most `chunkBytes` through one reused buffer.
///
/// Deliberate limits QEMU does not have (both return IOERR): more data segments than the
/// advertised `seg_max`, and more than `maxRequestBytes` per request (QEMU accepts up to
/// 2 GiB). A Linux driver stays far below both.
/// QEMU: virtio-blk (hw/block/virtio-blk.c) with a raw `-drive`.
public final class VirtIOBlock: VirtIODevice {
    /// The unit of `capacity` and of request sectors (virtio 1.x §5.2.6: always 512 bytes;
    /// the uapi headers have no constant for it).
    public static let sectorSize: UInt64 = 512
    /// The most data one request may move; larger ones complete with IOERR (see the type's notes).
    public static let maxRequestBytes: UInt64 = 16 << 20
    static let chunkBytes = 256 << 10
    static let queueSize: UInt16 = 256                   // QEMU: virtio-blk queue-size default
    /// seg_max as QEMU advertises it (queue size - 2, seg-max-adjust on).
    static let segMax = UInt64(queueSize - 2)
    /// Feature bits: VIRTIO_BLK_F_*.
    static let featureSegMax = UInt64(1) << VIRTIO_BLK_F_SEG_MAX, featureGeometry = UInt64(1) << VIRTIO_BLK_F_GEOMETRY
    static let featureRO = UInt64(1) << VIRTIO_BLK_F_RO, featureBlkSize = UInt64(1) << VIRTIO_BLK_F_BLK_SIZE
    static let featureFlush = UInt64(1) << VIRTIO_BLK_F_FLUSH, featureTopology = UInt64(1) << VIRTIO_BLK_F_TOPOLOGY
    static let featureConfigWCE = UInt64(1) << VIRTIO_BLK_F_CONFIG_WCE, featureDiscard = UInt64(1) << VIRTIO_BLK_F_DISCARD
    static let featureWriteZeroes = UInt64(1) << VIRTIO_BLK_F_WRITE_ZEROES
    /// Request types: VIRTIO_BLK_T_*.
    static let typeIn = UInt32(VIRTIO_BLK_T_IN), typeOut = UInt32(VIRTIO_BLK_T_OUT), typeFlush = UInt32(VIRTIO_BLK_T_FLUSH)
    static let typeGetID = UInt32(VIRTIO_BLK_T_GET_ID), typeDiscard = UInt32(VIRTIO_BLK_T_DISCARD)
    static let typeWriteZeroes = UInt32(VIRTIO_BLK_T_WRITE_ZEROES), typeBarrier = UInt32(VIRTIO_BLK_T_BARRIER)
    /// VIRTIO_BLK_WRITE_ZEROES_FLAG_UNMAP.
    static let writeZeroesUnmap = UInt32(VIRTIO_BLK_WRITE_ZEROES_FLAG_UNMAP)
    /// Limits advertised for discard / write-zeroes (one segment per request, as QEMU's
    /// BDRV_REQUEST_MAX_SECTORS defaults).
    static let maxDiscardSectors: UInt32 = 0x3f_ffff, maxZeroesSectors: UInt32 = 0x3f_ffff
    /// Request status: VIRTIO_BLK_S_OK, _IOERR, _UNSUPP.
    static let statusOK = UInt8(VIRTIO_BLK_S_OK), statusIOErr = UInt8(VIRTIO_BLK_S_IOERR)
    static let statusUnsupported = UInt8(VIRTIO_BLK_S_UNSUPP)
    /// VIRTIO_BLK_ID_BYTES: the longest GET_ID answer.
    static let idBytes = Int(VIRTIO_BLK_ID_BYTES)
    /// struct virtio_blk_outhdr {type, ioprio, sector}, which starts every request.
    static let headerBytes = CVIRTIO_BLK_OUTHDR_SIZE
    /// struct virtio_blk_discard_write_zeroes {sector, num_sectors, flags}: the one segment
    /// of a discard or write-zeroes request.
    static let segmentBytes = CVIRTIO_BLK_SEGMENT_SIZE

    /// The image file.
    public let path: String
    /// Opened read-only (`readonly=on`): VIRTIO_BLK_F_RO is offered and writes complete with IOERR.
    public let readOnly: Bool
    /// Disk size in 512-byte sectors.
    public let capacity: UInt64
    /// What GET_ID answers (`serial=`), cut to 20 bytes.
    public let serial: String
    private let image: RawImageFile
    private let logger: Logger
    private let hostErrors = RateLimitedLog()
    /// CONFIG_WCE's writeback byte: 0 (writethrough) makes every write flush.
    private let writeback = Atomic<UInt8>(1)
    private let wceNegotiated = Atomic<Bool>(false)
    /// The one transfer buffer (the I/O thread is its only user; the lock documents it).
    private let buffer = Mutex<[UInt8]>([UInt8](repeating: 0, count: VirtIOBlock.chunkBytes))

    /// Opens `path` (read-write unless `readOnly`).
    public init(path: String, readOnly: Bool, serial: String = "", logger: Logger = Logger(label: "vmm.virtio-blk")) throws {
        do { image = try RawImageFile(path: path, readOnly: readOnly) } catch {
            throw VirtIOError("cannot open disk image '\(path)'\(readOnly ? "" : " for reading and writing"): \(error.errnoName)")
        }
        self.path = path
        self.readOnly = readOnly
        self.serial = serial
        self.logger = logger
        capacity = try image.size() / Self.sectorSize
    }

    /// VIRTIO_ID_BLOCK.
    public var deviceType: UInt16 { UInt16(VIRTIO_ID_BLOCK) }
    /// PCI_CLASS_STORAGE_SCSI, as QEMU's virtio-blk-pci. QEMU: virtio_blk_pci_class_init().
    public var pciClassCode: UInt32 { 0x01_00_00 }
    /// QEMU's virtio-blk feature set for a raw image.
    public var features: UInt64 {
        Self.featureSegMax | Self.featureGeometry | Self.featureBlkSize | Self.featureFlush | Self.featureTopology
            | Self.featureConfigWCE | Self.featureDiscard | Self.featureWriteZeroes | (readOnly ? Self.featureRO : 0)
    }
    /// One request queue of 256 entries. QEMU: virtio-blk's `num-queues=1`, `queue-size=256`.
    public var queueSizes: [UInt16] { [Self.queueSize] }
    /// Back to writeback caching, CONFIG_WCE not negotiated. QEMU: virtio_blk_reset().
    public func reset() {
        writeback.store(1, ordering: .relaxed)
        wceNegotiated.store(false, ordering: .relaxed)
    }
    /// Records whether CONFIG_WCE was negotiated (only then does the writeback byte matter).
    /// QEMU: the CONFIG_WCE check of virtio_blk_set_status().
    public func featuresNegotiated(_ features: UInt64) {
        wceNegotiated.store(features & Self.featureConfigWCE != 0, ordering: .relaxed)
    }

    /// The driver may switch the cache mode (CONFIG_WCE): the writeback byte (`wce`).
    public func writeConfig(offset: UInt64, value: UInt64, size: Int) {
        if offset == UInt64(CVIRTIO_BLK_CFG_WCE), size == 1 { writeback.store(value & 1 == 0 ? 0 : 1, ordering: .relaxed) }
    }

    /// struct virtio_blk_config up to the padding after write_zeroes_may_unmap (60 bytes):
    /// capacity, seg_max, geometry, blk_size, topology, writeback, num_queues, the discard and
    /// write-zeroes limits. Offsets from <linux/virtio_blk.h>. QEMU: virtio_blk_update_config().
    public func readConfig(offset: UInt64, size: Int) -> UInt64 {
        var config = [UInt8](repeating: 0, count: CVIRTIO_BLK_CFG_SIZE_THROUGH_WRITE_ZEROES)
        func put(_ v: UInt64, _ at: Int, _ n: Int) { for i in 0..<n { config[at + i] = UInt8(truncatingIfNeeded: v >> (8 * UInt64(i))) } }
        put(capacity, CVIRTIO_BLK_CFG_CAPACITY, 8)
        put(Self.segMax, CVIRTIO_BLK_CFG_SEG_MAX, 4)
        // geometry: 16 heads, 63 sectors per track, cylinders to cover the disk (capped)
        put(min(capacity / (16 * 63), 65535), CVIRTIO_BLK_CFG_CYLINDERS, 2)
        put(16, CVIRTIO_BLK_CFG_HEADS, 1)
        put(63, CVIRTIO_BLK_CFG_SECTORS, 1)
        put(Self.sectorSize, CVIRTIO_BLK_CFG_BLK_SIZE, 4)
        // topology: physical_block_exp, alignment_offset, min_io_size, opt_io_size all 0, as
        // QEMU's defaults give (min_io_size = conf min_io_size / blk_size = 0).
        put(UInt64(writeback.load(ordering: .relaxed)), CVIRTIO_BLK_CFG_WCE, 1)
        put(1, CVIRTIO_BLK_CFG_NUM_QUEUES, 2)
        put(UInt64(Self.maxDiscardSectors), CVIRTIO_BLK_CFG_MAX_DISCARD_SECTORS, 4)
        put(1, CVIRTIO_BLK_CFG_MAX_DISCARD_SEG, 4)
        put(1, CVIRTIO_BLK_CFG_DISCARD_ALIGNMENT, 4)
        put(UInt64(Self.maxZeroesSectors), CVIRTIO_BLK_CFG_MAX_WRITE_ZEROES_SECTORS, 4)
        put(1, CVIRTIO_BLK_CFG_MAX_WRITE_ZEROES_SEG, 4)
        put(1, CVIRTIO_BLK_CFG_WRITE_ZEROES_MAY_UNMAP, 1)
        guard offset < UInt64(config.count) else { return 0 }
        var v: UInt64 = 0
        for i in 0..<max(0, min(size, 8)) where Int(offset) + i < config.count {
            v |= UInt64(config[Int(offset) + i]) << (8 * UInt64(i))
        }
        return v
    }

    /// Serves the request queue: pops, serves and returns each chain until the queue is empty or
    /// `budget` is spent. QEMU: virtio_blk_handle_vq().
    public func process(queue index: Int, _ queue: VirtQueue, memory: GuestMemory,
                        budget: inout VirtQueueBudget) throws(VirtQueueError) -> VirtQueueProgress {
        var progress = VirtQueueProgress()
        while !budget.isExhausted, let chain = try queue.pop(memory) {
            let used = try serve(chain, memory)
            budget.charge(bytes: Int(clamping: chain.readableBytes + chain.writableBytes))
            if try queue.push(head: chain.head, length: used, memory) { progress.interrupt = true }
        }
        return progress
    }

    /// One request, split as QEMU splits it: the readable part starts with the 16-byte header
    /// (struct virtio_blk_outhdr {le32 type, le32 ioprio, le64 sector}); the last writable
    /// byte is the status. Returns
    /// the used length: every writable byte, status included (QEMU's `in_len`).
    private func serve(_ chain: DescriptorChain, _ memory: GuestMemory) throws(VirtQueueError) -> UInt32 {
        let readable = chain.buffers.filter { !$0.writable }
        var writable = chain.buffers.filter(\.writable)
        guard let last = writable.last, !readable.isEmpty else { throw .blockRequest(chain.head, "missing headers") }
        guard chain.readableBytes >= UInt64(Self.headerBytes) else { throw .blockRequest(chain.head, "request outhdr too short") }
        // The status byte: `pop` guarantees the buffer is non-empty and does not wrap.
        let status = VirtQueueBuffer(address: last.address + UInt64(last.length - 1), length: 1, writable: true)
        writable[writable.count - 1].length -= 1
        if writable[writable.count - 1].length == 0 { writable.removeLast() }
        let header = try gather(readable, skip: 0, count: Self.headerBytes, memory)
        let type = le(header, CVIRTIO_BLK_OUTHDR_TYPE, 4), sector = le(header, CVIRTIO_BLK_OUTHDR_SECTOR, 8)
        let dataIn = chain.writableBytes - 1, dataOut = chain.readableBytes - UInt64(Self.headerBytes)
        let usedLength = UInt32(clamping: chain.writableBytes)
        let outcome: UInt8
        switch UInt32(truncatingIfNeeded: type) & ~(Self.typeOut | Self.typeBarrier) {
        case Self.typeIn:
            let write = type & UInt64(Self.typeOut) != 0
            let bytes = write ? dataOut : dataIn
            // seg_max data segments, plus the header and the status buffer.
            if let offset = range(sector, bytes), UInt64(chain.buffers.count) <= Self.segMax + 2, bytes <= Self.maxRequestBytes {
                outcome = write ? try writeData(readable, at: offset, bytes, memory) : try readData(writable, at: offset, bytes, memory)
            } else {
                outcome = Self.statusIOErr
            }
        case Self.typeFlush:
            outcome = host("flush") { () throws(SystemError) in try image.flush() }
        case Self.typeGetID:
            // The serial and its NUL, cut to the buffer and to VIRTIO_BLK_ID_BYTES (20).
            // QEMU: VIRTIO_BLK_T_GET_ID in virtio_blk_handle_request().
            let id = Array(serial.utf8) + [0]
            let n = Int(min(UInt64(id.count), dataIn, UInt64(Self.idBytes)))
            try scatter(id[0..<n], writable, memory)
            outcome = Self.statusOK
        case Self.typeDiscard & ~Self.typeOut, Self.typeWriteZeroes & ~Self.typeOut:
            guard type & UInt64(Self.typeOut) != 0, dataOut <= UInt64(Self.segmentBytes) else { outcome = Self.statusUnsupported; break }
            guard dataOut == UInt64(Self.segmentBytes) else { throw .blockRequest(chain.head, "discard/write_zeroes header too short") }
            let segment = try gather(readable, skip: Self.headerBytes, count: Self.segmentBytes, memory)
            let zeroes = UInt32(truncatingIfNeeded: type) & ~Self.typeBarrier == Self.typeWriteZeroes
            outcome = discardOrZero(first: le(segment, CVIRTIO_BLK_SEGMENT_SECTOR, 8),
                                    count: UInt32(truncatingIfNeeded: le(segment, CVIRTIO_BLK_SEGMENT_NUM_SECTORS, 4)),
                                    flags: UInt32(truncatingIfNeeded: le(segment, CVIRTIO_BLK_SEGMENT_FLAGS, 4)), zeroes: zeroes)
        default:
            outcome = Self.statusUnsupported
        }
        try memory.write([outcome][...], into: status)
        return usedLength
    }

    /// QEMU: virtio_blk_handle_discard_write_zeroes(). Discard is accepted and ignored, as
    /// QEMU's default `discard=ignore`; write-zeroes with UNMAP punches a hole.
    private func discardOrZero(first: UInt64, count: UInt32, flags: UInt32, zeroes: Bool) -> UInt8 {
        let limit = zeroes ? Self.maxZeroesSectors : Self.maxDiscardSectors
        let bytes = UInt64(count) * Self.sectorSize                 // count ≤ 2^32: no overflow
        guard count <= limit, let offset = range(first, bytes) else { return Self.statusIOErr }
        guard flags & ~Self.writeZeroesUnmap == 0 else { return Self.statusUnsupported }
        guard zeroes else { return flags & Self.writeZeroesUnmap != 0 ? Self.statusUnsupported : (readOnly ? Self.statusIOErr : Self.statusOK) }
        guard !readOnly else { return Self.statusIOErr }
        return host("write-zeroes") { () throws(SystemError) in
            if try image.zeroRange(at: offset, length: bytes, mayUnmap: flags & Self.writeZeroesUnmap != 0) { return }
            // No hole punching here: write zeros, a chunk at a time.
            let zeros = [UInt8](repeating: 0, count: Self.chunkBytes)
            var done: UInt64 = 0
            while done < bytes {
                let n = Int(min(UInt64(zeros.count), bytes - done))
                try image.write(zeros[0..<n], at: offset + done)
                done += UInt64(n)
            }
        }
    }

    /// Disk → guest: `bytes` from `offset` into the data buffers, a chunk at a time.
    private func readData(_ buffers: [VirtQueueBuffer], at offset: UInt64, _ bytes: UInt64,
                          _ memory: GuestMemory) throws(VirtQueueError) -> UInt8 {
        try buffer.withLock { chunk throws(VirtQueueError) -> UInt8 in
            var done: UInt64 = 0
            for b in buffers {
                var inBuffer: UInt64 = 0
                while inBuffer < UInt64(b.length) {
                    let n = Int(min(UInt64(b.length) - inBuffer, UInt64(chunk.count)))
                    do { try image.read(into: &chunk, count: n, at: offset + done) } catch {
                        hostErrors.log({ logger.warning("\($0)") }) { "virtio-blk \(path): \(error)" }
                        return Self.statusIOErr
                    }
                    let part = VirtQueueBuffer(address: b.address + inBuffer, length: UInt32(n), writable: true)
                    try memory.write(chunk[0..<n], into: part)
                    inBuffer += UInt64(n)
                    done += UInt64(n)
                }
            }
            return Self.statusOK
        }
    }

    /// Guest → disk: the data after the request header to `offset`, a chunk at a time.
    private func writeData(_ buffers: [VirtQueueBuffer], at offset: UInt64, _ bytes: UInt64,
                           _ memory: GuestMemory) throws(VirtQueueError) -> UInt8 {
        guard !readOnly else { return Self.statusIOErr }
        var done: UInt64 = 0
        var skip = UInt64(Self.headerBytes)
        for b in buffers {
            var at = min(skip, UInt64(b.length))
            skip -= at
            while at < UInt64(b.length) {
                let n = Int(min(UInt64(b.length) - at, UInt64(Self.chunkBytes)))
                let data = try memory.read(VirtQueueBuffer(address: b.address + at, length: UInt32(n), writable: false), count: n)
                do { try image.write(data[...], at: offset + done) } catch {
                    hostErrors.log({ logger.warning("\($0)") }) { "virtio-blk \(path): \(error)" }
                    return Self.statusIOErr
                }
                at += UInt64(n)
                done += UInt64(n)
            }
        }
        if wceNegotiated.load(ordering: .relaxed) && writeback.load(ordering: .relaxed) == 0 {
            return host("flush") { () throws(SystemError) in try image.flush() }
        }
        return Self.statusOK
    }

    /// Runs a host operation; a failure is IOERR for the guest and a rate-limited log line.
    private func host(_ what: String, _ body: () throws(SystemError) -> Void) -> UInt8 {
        do { try body() } catch {
            hostErrors.log({ logger.warning("\($0)") }) { "virtio-blk \(path) \(what): \(error)" }
            return Self.statusIOErr
        }
        return Self.statusOK
    }

    /// The byte offset of a sector-aligned transfer inside the disk, or nil.
    /// QEMU: virtio_blk_sect_range_ok().
    private func range(_ sector: UInt64, _ bytes: UInt64) -> UInt64? {
        guard bytes % Self.sectorSize == 0, sector <= capacity, bytes / Self.sectorSize <= capacity - sector else { return nil }
        return sector * Self.sectorSize
    }

    /// `count` bytes of the readable buffers starting `skip` bytes in.
    private func gather(_ buffers: [VirtQueueBuffer], skip: Int, count: Int, _ memory: GuestMemory) throws(VirtQueueError) -> [UInt8] {
        var out: [UInt8] = []
        var skip = UInt64(skip)
        for b in buffers where out.count < count {
            let at = min(skip, UInt64(b.length))
            skip -= at
            let n = Int(min(UInt64(b.length) - at, UInt64(count - out.count)))
            guard n > 0 else { continue }
            out += try memory.read(VirtQueueBuffer(address: b.address + at, length: UInt32(n), writable: false), count: n)
        }
        return out
    }

    private func scatter(_ data: ArraySlice<UInt8>, _ buffers: [VirtQueueBuffer], _ memory: GuestMemory) throws(VirtQueueError) {
        var done = data.startIndex
        for b in buffers where done < data.endIndex {
            let n = min(Int(b.length), data.endIndex - done)
            try memory.write(data[done..<done + n], into: b)
            done += n
        }
    }

    private func le(_ bytes: [UInt8], _ at: Int, _ n: Int) -> UInt64 {
        (0..<n).reduce(UInt64(0)) { $0 | UInt64(bytes[at + $1]) << (8 * UInt64($1)) }
    }
}

extension VirtQueueError {
    /// A virtio-blk request QEMU refuses with virtio_error() (missing or short headers).
    static func blockRequest(_ head: UInt16, _ what: String) -> VirtQueueError { .malformedRequest(head: head, "virtio-blk \(what)") }
}

/// A virtio device that could not be set up, e.g. a disk image that will not open (see
/// `UserFacingError`).
public typealias VirtIOError = UserFacingError
