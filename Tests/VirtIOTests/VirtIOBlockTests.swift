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


/// What the device advertises bounds what it accepts; zeroing frees space where asked.
@Suite struct VirtIOBlockLimitTests {
    func image(bytes: Int) throws -> String {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("blk-limit-\(getpid())-\(UInt32.random(in: 0...UInt32.max)).img").path
        try Data(repeating: 0xab, count: bytes).write(to: URL(fileURLWithPath: path))
        return path
    }

    func process(_ dev: VirtIOBlock, _ h: QueueHarness) throws {
        var budget = VirtQueueBudget.perWakeUp
        _ = try dev.process(queue: 0, h.queue, memory: h.memory, budget: &budget)
    }

    /// A read with more data segments than seg_max (254) is IOERR; seg_max itself is fine.
    @Test(arguments: [(254, UInt8(0)), (255, UInt8(1))])
    func segmentsBeyondSegMaxAreRefused(segments: Int, status: UInt8) throws {
        let path = try image(bytes: 1 << 20)
        defer { try? FileManager.default.removeItem(atPath: path) }
        let dev = try VirtIOBlock(path: path, readOnly: false)
        #expect(dev.readConfig(offset: 12, size: 4) == 254)
        let h = try QueueHarness(ramSize: 0x100000)
        try h.memory.store(UInt32(0), at: 0x5000)                       // IN, sector 0
        try h.memory.store(UInt64(0), at: 0x5008)
        let table: UInt64 = 0x10000
        var entries: [(UInt64, UInt32, UInt16)] = [(0x5000, 16, 1)]
        for i in 0..<segments { entries.append((0x20000 + UInt64(i) * 512, 512, 2 | 1)) }
        entries.append((0x7000, 1, 2))
        for (i, e) in entries.enumerated() {
            try h.setDescriptor(UInt16(i), addr: e.0, len: e.1, flags: i == entries.count - 1 ? e.2 : e.2 | 1,
                                next: UInt16(i + 1), table: table)
        }
        try h.setDescriptor(0, addr: table, len: UInt32(entries.count * 16), flags: 4)
        try h.publish(0)
        try process(dev, h)
        #expect(try h.memory.load(UInt8.self, at: 0x7000) == status)
    }

    /// write-zeroes with UNMAP punches a hole (fewer blocks allocated); without it the range
    /// reads zero and stays allocated. Discard is accepted and ignored, as QEMU's default
    /// discard=ignore. QEMU: virtio_blk_handle_discard_write_zeroes().
    @Test func writeZeroesUnmapPunchesAHole() throws {
        let path = try image(bytes: 4 << 20)
        defer { try? FileManager.default.removeItem(atPath: path) }
        let dev = try VirtIOBlock(path: path, readOnly: false)
        func blocks() throws -> Int64 {
            var st = stat()
            #expect(stat(path, &st) == 0)
            return Int64(st.st_blocks)
        }
        let h = try QueueHarness()
        func zero(_ sector: UInt64, _ count: UInt32, flags: UInt32) throws -> UInt8 {
            try h.memory.store(UInt32(13), at: 0x5000)
            try h.memory.store(UInt64(0), at: 0x5008)
            try h.memory.store(sector, at: 0x8000)
            try h.memory.store(count, at: 0x8008)
            try h.memory.store(flags, at: 0x800c)
            try h.setDescriptor(0, addr: 0x5000, len: 16, flags: 1, next: 1)
            try h.setDescriptor(1, addr: 0x8000, len: 16, flags: 1, next: 2)
            try h.setDescriptor(2, addr: 0x7000, len: 1, flags: 2)
            try h.publish(0)
            try process(dev, h)
            return try h.memory.load(UInt8.self, at: 0x7000)
        }
        let before = try blocks()
        #expect(try zero(0, 2048, flags: 1) == 0)                      // first MiB, UNMAP
        #expect(try blocks() < before)
        let afterHole = try blocks()
        #expect(try zero(2048, 2048, flags: 0) == 0)                   // second MiB, keep allocated
        #expect(try blocks() == afterHole)
        #expect(try zero(0, 8, flags: 2) == 2)                         // unknown flag: UNSUPP
        let data = try Data(contentsOf: URL(fileURLWithPath: path))
        #expect(data[0..<(2 << 20)].allSatisfy { $0 == 0 })
        #expect(data[(2 << 20)...].allSatisfy { $0 == 0xab })
    }

    /// GET_ID writes the serial and its NUL, no more (QEMU: VIRTIO_BLK_T_GET_ID).
    @Test func getIDWritesSerialAndNul() throws {
        let path = try image(bytes: 4096)
        defer { try? FileManager.default.removeItem(atPath: path) }
        let dev = try VirtIOBlock(path: path, readOnly: false, serial: "disk7")
        let h = try QueueHarness()
        try h.memory.write([UInt8](repeating: 0xee, count: 20), at: 0x8000)
        try h.memory.store(UInt32(8), at: 0x5000)
        try h.setDescriptor(0, addr: 0x5000, len: 16, flags: 1, next: 1)
        try h.setDescriptor(1, addr: 0x8000, len: 20, flags: 2 | 1, next: 2)
        try h.setDescriptor(2, addr: 0x7000, len: 1, flags: 2)
        try h.publish(0)
        try process(dev, h)
        #expect(try h.memory.read(at: 0x8000, count: 8) == Array("disk7".utf8) + [0, 0xee, 0xee])
        #expect(try h.memory.load(UInt8.self, at: 0x7000) == 0)
    }

    /// A chain with no readable header breaks the device (QEMU: "virtio-blk missing headers").
    @Test func missingHeadersBreakTheDevice() throws {
        let path = try image(bytes: 4096)
        defer { try? FileManager.default.removeItem(atPath: path) }
        let dev = try VirtIOBlock(path: path, readOnly: false)
        let h = try QueueHarness()
        try h.setDescriptor(0, addr: 0x7000, len: 1, flags: 2)
        try h.publish(0)
        #expect(throws: VirtQueueError.malformedRequest(head: 0, "virtio-blk missing headers")) { try process(dev, h) }
    }
}
