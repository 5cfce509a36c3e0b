import Foundation
import Logging
import Memory

/// The virtio block device over a raw image file: read, write, flush and get-id requests,
/// served on the I/O thread. Every guest-given sector, length and buffer is checked: a request
/// outside the disk or larger than `maxRequestBytes` completes with IOERR, never a trap.
/// QEMU: virtio-blk (hw/block/virtio-blk.c) with a raw `-drive`.
public final class VirtIOBlock: VirtIODevice, @unchecked Sendable {
    // @unchecked: `file` is used only from the I/O thread (requests are served there, one
    // queue at a time); everything else is immutable.
    public static let sectorSize: UInt64 = 512
    public static let maxRequestBytes = 16 << 20
    static let featureSegMax: UInt64 = 1 << 2, featureRO: UInt64 = 1 << 5, featureBlkSize: UInt64 = 1 << 6
    static let featureFlush: UInt64 = 1 << 9, featureIndirect: UInt64 = 1 << 28
    static let typeIn: UInt32 = 0, typeOut: UInt32 = 1, typeFlush: UInt32 = 4, typeGetID: UInt32 = 8
    static let statusOK: UInt8 = 0, statusIOErr: UInt8 = 1, statusUnsupported: UInt8 = 2

    public let path: String
    public let readOnly: Bool
    /// Disk size in 512-byte sectors.
    public let capacity: UInt64
    public let serial: String
    private let file: FileHandle
    private let logger: Logger

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
    public var features: UInt64 {
        Self.featureSegMax | Self.featureBlkSize | Self.featureFlush | Self.featureIndirect | (readOnly ? Self.featureRO : 0)
    }
    public var queueSizes: [UInt16] { [256] }        // QEMU: virtio-blk queue-size default 256
    public func reset() {}
    public func writeConfig(offset: UInt64, value: UInt64, size: Int) {}

    /// struct virtio_blk_config: capacity (le64) @0, size_max @8, seg_max @12, geometry @16,
    /// blk_size @20.
    public func readConfig(offset: UInt64, size: Int) -> UInt64 {
        var config = [UInt8](repeating: 0, count: 24)
        func put(_ v: UInt64, _ at: Int, _ n: Int) { for i in 0..<n { config[at + i] = UInt8(truncatingIfNeeded: v >> (8 * UInt64(i))) } }
        put(capacity, 0, 8)
        put(126, 12, 4)
        put(Self.sectorSize, 20, 4)
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
