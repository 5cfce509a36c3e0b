import Foundation
import Memory
import Testing
@testable import VirtIO

@Suite struct VirtIOBlockTests {
    func image(sectors: Int) throws -> String {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("blk-\(getpid())-\(UInt32.random(in: 0...UInt32.max)).img").path
        var bytes = [UInt8](repeating: 0, count: sectors * 512)
        for i in 0..<bytes.count { bytes[i] = UInt8(truncatingIfNeeded: i / 512) }
        try Data(bytes).write(to: URL(fileURLWithPath: path))
        return path
    }

    /// Posts header / data / status as three descriptors and runs the device; returns the
    /// status byte and the used length.
    func request(_ h: QueueHarness, _ dev: VirtIOBlock, type: UInt32, sector: UInt64, dataLength: UInt32,
                 dataWritable: Bool, statusLength: UInt32 = 1) throws -> (status: UInt8, used: UInt32) {
        try h.memory.store(type, at: 0x5000)
        try h.memory.store(UInt32(0), at: 0x5004)
        try h.memory.store(sector, at: 0x5008)
        try h.memory.store(UInt8(0xee), at: 0x7000)
        try h.setDescriptor(0, addr: 0x5000, len: 16, flags: 1, next: 1)
        try h.setDescriptor(1, addr: 0x8000, len: dataLength, flags: 1 | (dataWritable ? 2 : 0), next: 2)
        try h.setDescriptor(2, addr: 0x7000, len: statusLength, flags: 2)
        try h.publish(0)
        var budget = VirtQueueBudget.perWakeUp
        _ = try dev.process(queue: 0, h.queue, memory: h.memory, budget: &budget)
        let usedIdx = try h.memory.load(UInt16.self, at: h.used + 2)
        let used = try h.memory.load(UInt32.self, at: h.used + 4 + 8 * UInt64((usedIdx &- 1) % h.size) + 4)
        return (try h.memory.load(UInt8.self, at: 0x7000 + UInt64(statusLength) - 1), used)
    }

    @Test func readWriteAndBounds() throws {
        let path = try image(sectors: 8)
        defer { try? FileManager.default.removeItem(atPath: path) }
        let dev = try VirtIOBlock(path: path, readOnly: false)
        #expect(dev.capacity == 8 && dev.readConfig(offset: 0, size: 8) == 8)
        let h = try QueueHarness()
        #expect(try request(h, dev, type: 0, sector: 3, dataLength: 1024, dataWritable: true) == (0, 1025))
        #expect(try h.memory.read(at: 0x8000, count: 1) == [3] && h.memory.read(at: 0x8000 + 512, count: 1) == [4])
        try h.memory.write([UInt8](repeating: 0x5a, count: 512), at: 0x8000)
        #expect(try request(h, dev, type: 1, sector: 7, dataLength: 512, dataWritable: false) == (0, 1))
        #expect(try request(h, dev, type: 0, sector: 7, dataLength: 512, dataWritable: true).status == 0)
        #expect(try h.memory.read(at: 0x8000, count: 2) == [0x5a, 0x5a])
        // Past the end, straddling it, unaligned, far beyond: IOERR, used length still data + status.
        #expect(try request(h, dev, type: 0, sector: 8, dataLength: 512, dataWritable: true) == (1, 513))
        #expect(try request(h, dev, type: 0, sector: 7, dataLength: 1024, dataWritable: true).status == 1)
        #expect(try request(h, dev, type: 0, sector: 0, dataLength: 100, dataWritable: true).status == 1)
        #expect(try request(h, dev, type: 1, sector: UInt64.max, dataLength: 512, dataWritable: false).status == 1)
        #expect(try request(h, dev, type: 0, sector: 0, dataLength: 0x7fff_fe00, dataWritable: true).status == 1)
        #expect(try request(h, dev, type: 99, sector: 0, dataLength: 512, dataWritable: true).status == 2)
        #expect(try request(h, dev, type: 4, sector: 0, dataLength: 512, dataWritable: false).status == 0)
    }

    @Test func readOnlyImagesRefuseWrites() throws {
        let path = try image(sectors: 4)
        defer { try? FileManager.default.removeItem(atPath: path) }
        let dev = try VirtIOBlock(path: path, readOnly: true)
        #expect(dev.features & (1 << 5) != 0)
        let h = try QueueHarness()
        #expect(try request(h, dev, type: 1, sector: 0, dataLength: 512, dataWritable: false).status == 1)
        #expect(throws: VirtIOError.self) { try VirtIOBlock(path: "/nonexistent/x.img", readOnly: false) }
    }

    @Test func writeZeroesDiscardAndWritethrough() throws {
        let path = try image(sectors: 8)
        defer { try? FileManager.default.removeItem(atPath: path) }
        let dev = try VirtIOBlock(path: path, readOnly: false)
        #expect(dev.features & (1 << 13 | 1 << 14 | 1 << 11) == (1 << 13 | 1 << 14 | 1 << 11))
        let h = try QueueHarness()
        func segment(_ sector: UInt64, _ count: UInt32) throws {
            try h.memory.store(sector, at: 0x8000)
            try h.memory.store(count, at: 0x8008)
            try h.memory.store(UInt32(0), at: 0x800c)
        }
        try segment(2, 2)
        #expect(try request(h, dev, type: 13, sector: 0, dataLength: 16, dataWritable: false).status == 0)
        #expect(try request(h, dev, type: 0, sector: 1, dataLength: 2048, dataWritable: true).status == 0)
        let back = try h.memory.read(at: 0x8000, count: 2048)
        #expect(back[0] == 1 && back[512..<1536].allSatisfy { $0 == 0 } && back[1536] == 4)
        try segment(7, 2)                                                  // runs past the end
        #expect(try request(h, dev, type: 13, sector: 0, dataLength: 16, dataWritable: false).status == 1)
        try segment(0, 8)
        #expect(try request(h, dev, type: 11, sector: 0, dataLength: 16, dataWritable: false).status == 0)
        // Two segments: UNSUPP, as QEMU's virtio_blk_handle_request() answers out_len > 16.
        #expect(try request(h, dev, type: 11, sector: 0, dataLength: 32, dataWritable: false).status == 2)
        // CONFIG_WCE: the driver can turn the cache to writethrough.
        #expect(dev.readConfig(offset: 32, size: 1) == 1)
        dev.writeConfig(offset: 32, value: 0, size: 1)
        #expect(dev.readConfig(offset: 32, size: 1) == 0)
    }
}

