import Foundation
import Logging
import Memory
import Synchronization

/// The virtio block device over a raw image file: read, write, flush and get-id requests,
/// served on the I/O thread. Every guest-given sector, length and buffer is checked: a request
/// outside the disk or larger than `maxRequestBytes` completes with IOERR, never a trap.
/// QEMU: virtio-blk (hw/block/virtio-blk.c) with a raw `-drive`.
public final class VirtIOBlock: VirtIODevice, @unchecked Sendable {
    // @unchecked: `file` is used only from the I/O thread (requests are served there, one
    // queue at a time); everything else is immutable.
    public static let sectorSize: UInt64 = 512
    public static let maxRequestBytes = 16 << 20
    static let featureSegMax: UInt64 = 1 << 2, featureGeometry: UInt64 = 1 << 4, featureRO: UInt64 = 1 << 5
    static let featureBlkSize: UInt64 = 1 << 6, featureFlush: UInt64 = 1 << 9, featureTopology: UInt64 = 1 << 10
    static let featureConfigWCE: UInt64 = 1 << 11, featureDiscard: UInt64 = 1 << 13, featureWriteZeroes: UInt64 = 1 << 14
    static let typeIn: UInt32 = 0, typeOut: UInt32 = 1, typeFlush: UInt32 = 4, typeGetID: UInt32 = 8
    static let typeDiscard: UInt32 = 11, typeWriteZeroes: UInt32 = 13
    /// Limits advertised for discard / write-zeroes (one segment per request, as QEMU).
    static let maxDiscardSectors: UInt32 = 0x3f_ffff, maxZeroesSectors: UInt32 = 0x3f_ffff
    static let statusOK: UInt8 = 0, statusIOErr: UInt8 = 1, statusUnsupported: UInt8 = 2

    public let path: String
    public let readOnly: Bool
    /// Disk size in 512-byte sectors.
    public let capacity: UInt64
    public let serial: String
    private let file: FileHandle
    private let logger: Logger
    /// CONFIG_WCE's writeback byte: 0 (writethrough) makes every write flush.
    private let writeback = Atomic<UInt8>(1)
    private let wceNegotiated = Atomic<Bool>(false)

    /// Opens `path` (read-write unless `readOnly`).
    public init(path: String, readOnly: Bool, serial: String = "", logger: Logger = Logger(label: "vmm.virtio-blk")) throws {
        guard let file = readOnly ? FileHandle(forReadingAtPath: path) : FileHandle(forUpdatingAtPath: path) else {
            throw VirtIOError("cannot open disk image '\(path)'\(readOnly ? "" : " for reading and writing")")
        }
        self.file = file
        self.path = path
        self.readOnly = readOnly
        self.serial = serial
        self.logger = logger
        capacity = try file.seekToEnd() / Self.sectorSize
    }

    public var deviceType: UInt16 { 2 }
    /// QEMU's virtio-blk feature set for a raw image.
    public var features: UInt64 {
        Self.featureSegMax | Self.featureGeometry | Self.featureBlkSize | Self.featureFlush | Self.featureTopology
            | Self.featureConfigWCE | Self.featureDiscard | Self.featureWriteZeroes | (readOnly ? Self.featureRO : 0)
    }
    public var queueSizes: [UInt16] { [256] }        // QEMU: virtio-blk queue-size default 256
    public func reset() {
        writeback.store(1, ordering: .relaxed)
        wceNegotiated.store(false, ordering: .relaxed)
    }
    public func featuresNegotiated(_ features: UInt64) {
        wceNegotiated.store(features & Self.featureConfigWCE != 0, ordering: .relaxed)
    }

    /// The driver may switch the cache mode (CONFIG_WCE): writeback byte at offset 32.
    public func writeConfig(offset: UInt64, value: UInt64, size: Int) {
        if offset == 32, size == 1 { writeback.store(value & 1 == 0 ? 0 : 1, ordering: .relaxed) }
    }

    /// struct virtio_blk_config: capacity @0, seg_max @12, geometry @16, blk_size @20,
    /// topology @24, writeback @32, num_queues @34, discard limits @36, write-zeroes limits @48.
    public func readConfig(offset: UInt64, size: Int) -> UInt64 {
        var config = [UInt8](repeating: 0, count: 60)
        func put(_ v: UInt64, _ at: Int, _ n: Int) { for i in 0..<n { config[at + i] = UInt8(truncatingIfNeeded: v >> (8 * UInt64(i))) } }
        put(capacity, 0, 8)
        put(UInt64(queueSizes[0] - 2), 12, 4)                 // seg_max: QEMU's queue size - 2
        // geometry: 16 heads, 63 sectors per track, cylinders to cover the disk (capped)
        put(min(capacity / (16 * 63), 65535), 16, 2)
        put(16, 18, 1)
        put(63, 19, 1)
        put(Self.sectorSize, 20, 4)
        put(1, 26, 2)                                         // topology: min_io_size 1 block
        put(UInt64(writeback.load(ordering: .relaxed)), 32, 1)
        put(1, 34, 2)                                         // num_queues
        put(UInt64(Self.maxDiscardSectors), 36, 4)
        put(1, 40, 4)                                         // max_discard_seg
        put(1, 44, 4)                                         // discard_sector_alignment
        put(UInt64(Self.maxZeroesSectors), 48, 4)
        put(1, 52, 4)                                         // max_write_zeroes_seg
        put(1, 56, 1)                                         // write_zeroes_may_unmap
        guard offset < UInt64(config.count) else { return 0 }
        var v: UInt64 = 0
        for i in 0..<size where Int(offset) + i < config.count { v |= UInt64(config[Int(offset) + i]) << (8 * UInt64(i)) }
        return v
    }

    public func process(queue index: Int, _ queue: VirtQueue, memory: GuestMemory) throws(VirtQueueError) -> Bool {
        var interrupt = false
        while let chain = try queue.pop(memory) {
            let written = serve(chain, memory)
            if try queue.push(head: chain.head, length: written, memory) { interrupt = true }
        }
        return interrupt
    }

    /// One request; returns the bytes written into the guest's buffers (data + status).
    private func serve(_ chain: DescriptorChain, _ memory: GuestMemory) -> UInt32 {
        let readable = chain.buffers.filter { !$0.writable }
        var writable = chain.buffers.filter(\.writable)
        // The status byte is the last byte the device may write.
        guard let last = writable.last, last.length > 0 else { return 0 }
        let statusAddress = last.address &+ UInt64(last.length - 1)
        writable[writable.count - 1].length -= 1
        if writable[writable.count - 1].length == 0 { writable.removeLast() }
        let readableBytes = readable.reduce(0) { $0 + Int($1.length) }, writableBytes = writable.reduce(0) { $0 + Int($1.length) }
        // The used length is every byte the driver let the device write (data + status),
        // whatever the outcome, as QEMU reports `in_len`.
        let usedLength = UInt32(clamping: writableBytes + 1)
        func finish(_ status: UInt8, _ dataWritten: Int) -> UInt32 {
            do { try memory.write([status], at: statusAddress) } catch { return 0 }
            return usedLength
        }
        guard readableBytes >= 16, readableBytes - 16 <= Self.maxRequestBytes, writableBytes <= Self.maxRequestBytes,
              let stream = try? gather(readable, memory) else { return finish(Self.statusIOErr, 0) }
        let type = UInt32(stream[0]) | UInt32(stream[1]) << 8 | UInt32(stream[2]) << 16 | UInt32(stream[3]) << 24
        let sector = (8..<16).reduce(UInt64(0)) { $0 | UInt64(stream[$1]) << (8 * UInt64($1 - 8)) }
        switch type {
        case Self.typeIn:
            guard let offset = range(sector, writableBytes) else { return finish(Self.statusIOErr, 0) }
            do {
                try file.seek(toOffset: offset)
                var data = try file.read(upToCount: writableBytes).map { [UInt8]($0) } ?? []
                if data.count < writableBytes { data += [UInt8](repeating: 0, count: writableBytes - data.count) }
                try scatter(data, writable, memory)
                return finish(Self.statusOK, writableBytes)
            } catch {
                logger.warning("virtio-blk read of sector \(sector): \(error)")
                return finish(Self.statusIOErr, 0)
            }
        case Self.typeOut:
            let data = Array(stream[16...])
            guard !readOnly, let offset = range(sector, data.count) else { return finish(Self.statusIOErr, 0) }
            do {
                try file.seek(toOffset: offset)
                try file.write(contentsOf: data)
                if wceNegotiated.load(ordering: .relaxed) && writeback.load(ordering: .relaxed) == 0 { try file.synchronize() }
                return finish(Self.statusOK, 0)
            } catch {
                logger.warning("virtio-blk write of sector \(sector): \(error)")
                return finish(Self.statusIOErr, 0)
            }
        case Self.typeFlush:
            do { try file.synchronize() } catch { return finish(Self.statusIOErr, 0) }
            return finish(Self.statusOK, 0)
        case Self.typeGetID:
            var id = Array(serial.utf8.prefix(20))
            id += [UInt8](repeating: 0, count: 20 - id.count)
            let n = min(20, writableBytes)
            do { try scatter(Array(id.prefix(n)), writable, memory) } catch { return finish(Self.statusIOErr, 0) }
            return finish(Self.statusOK, n)
        case Self.typeDiscard, Self.typeWriteZeroes:
            // One segment {le64 sector, le32 num_sectors, le32 flags}, as the limits say.
            let segment = Array(stream[16...])
            guard segment.count == 16, !readOnly else { return finish(Self.statusIOErr, 0) }
            let first = (0..<8).reduce(UInt64(0)) { $0 | UInt64(segment[$1]) << (8 * UInt64($1)) }
            let count = (8..<12).reduce(UInt32(0)) { $0 | UInt32(segment[$1]) << (8 * UInt32($1 - 8)) }
            let limit = type == Self.typeDiscard ? Self.maxDiscardSectors : Self.maxZeroesSectors
            guard count <= limit, first <= capacity, UInt64(count) <= capacity - first else { return finish(Self.statusIOErr, 0) }
            // Discard may leave the data as it is (the spec allows it); write-zeroes must zero.
            guard type == Self.typeWriteZeroes else { return finish(Self.statusOK, 0) }
            do {
                let zeros = [UInt8](repeating: 0, count: 1 << 20)
                var done: UInt64 = 0
                let total = UInt64(count) * Self.sectorSize
                try file.seek(toOffset: first * Self.sectorSize)
                while done < total {
                    let n = Int(min(UInt64(zeros.count), total - done))
                    try file.write(contentsOf: zeros[0..<n])
                    done += UInt64(n)
                }
                return finish(Self.statusOK, 0)
            } catch {
                return finish(Self.statusIOErr, 0)
            }
        default:
            return finish(Self.statusUnsupported, 0)
        }
    }

    /// The byte offset of a sector-aligned transfer inside the disk, or nil.
    private func range(_ sector: UInt64, _ bytes: Int) -> UInt64? {
        guard UInt64(bytes) % Self.sectorSize == 0, sector <= capacity,
              UInt64(bytes) / Self.sectorSize <= capacity - sector else { return nil }
        return sector * Self.sectorSize
    }

    private func gather(_ buffers: [VirtQueueBuffer], _ memory: GuestMemory) throws -> [UInt8] {
        var out: [UInt8] = []
        for b in buffers { out += try memory.read(at: b.address, count: Int(b.length)) }
        return out
    }

    private func scatter(_ data: [UInt8], _ buffers: [VirtQueueBuffer], _ memory: GuestMemory) throws {
        var done = 0
        for b in buffers where done < data.count {
            let n = min(Int(b.length), data.count - done)
            try memory.write(data[done..<done + n], at: b.address)
            done += n
        }
    }
}

/// A virtio device that could not be set up (e.g. a disk image that will not open).
public struct VirtIOError: Error, CustomStringConvertible {
    public var description: String
    public init(_ description: String) { self.description = description }
}
