import Memory
import VirtIO

/// `VirtQueue.pop`/`push` as the I/O thread drives them, over a guest-memory image the fuzzer
/// writes: the driver's whole side (descriptor table, available ring, indirect tables, indices,
/// flags, event indices) and the ring addresses are hostile.
///
/// Input: `u8` log2 queue size (mod 16), `u8` flags (bit 0 EVENT_IDX), `u64` desc, `u64` avail,
/// `u64` used, then the RAM image. Guest memory is 64 KiB of RAM at 0 and the same image in
/// 64 KiB of RAM ending at 2^64 (so ring arithmetic that wraps meets real RAM), with a device
/// region at 0x10000 (not RAM).
///
/// Checks, for each of at most `maxChains` pops: a returned buffer is not empty and does not
/// wrap past 2^64 (`VirtQueueBuffer`'s contract); each push advances the used index in guest
/// memory by exactly one and writes the chain's head into the used element; and afterwards no
/// guest byte changed outside the used ring (with its avail_event trailer).
func fuzzVirtQueue(_ data: [UInt8]) throws(FuzzFailure) {
    try VirtQueueFixture.shared.with { f throws(FuzzFailure) in try f.run(data) }
}

final class VirtQueueFixture {
    static let shared = Fixture { VirtQueueFixture() }
    static let ramSize: UInt64 = 0x10000
    static let highBase: UInt64 = 0 &- ramSize
    static let maxChains = 16
    static let name = FuzzTarget.virtqueue.rawValue

    let memory: GuestMemory
    let low: RAMBlock, high: RAMBlock

    init() {
        let system = MemorySystem()
        let (root, space) = makeSpace("memory", size: UInt128(1) << 64, system: system)
        let lowRAM = makeRAM("ram-low", Self.ramSize), highRAM = makeRAM("ram-high", Self.ramSize)
        root.addSubregion(lowRAM, at: 0)
        root.addSubregion(highRAM, at: Self.highBase)
        root.addSubregion(.io(name: "mmio", size: 0x1000, ops: MemoryRegionOps(read: { _, _ in 0 }, write: { _, _, _ in })),
                          at: Self.ramSize)
        memory = space.guestMemory
        low = lowRAM.ramBlock!
        high = highRAM.ramBlock!
    }

    func run(_ data: [UInt8]) throws(FuzzFailure) {
        var input = FuzzInput(data)
        let size = UInt16(1) << UInt16(input.u8() % 16)
        let eventIdx = input.u8() & 1 != 0
        let desc = input.u64(), avail = input.u64(), used = input.u64()
        let image = input.rest()
        low.fill(with: image)
        high.fill(with: image)
        let queue = VirtQueue(maxSize: VirtQueue.maxSize)
        // Rings anywhere, near 2^64 included: the queue refuses what does not lie in RAM.
        do { try queue.configure(size: size, desc: desc, avail: avail, used: used, eventIdx: eventIdx, memory: memory) } catch { return }

        var pushed: UInt16 = 0
        for _ in 0..<Self.maxChains {
            let chain: DescriptorChain
            do {
                guard let c = try queue.pop(memory) else { break }
                chain = c
            } catch {
                break     // a refused ring: the transport marks the device broken
            }
            var written: UInt32 = 0
            for b in chain.buffers {
                try require(b.length > 0 || KnownOpen.skip("virtqueue-empty-buffer"), Self.name,
                            "pop returned an empty buffer at \(hex(b.address))")
                try require(b.length == 0 || UInt64(b.length - 1) <= UInt64.max - b.address || KnownOpen.skip("virtqueue-buffer-wrap"), Self.name,
                            "pop returned a buffer wrapping past 2^64: \(hex(b.address)) + \(b.length)")
                if b.writable { written = written &+ b.length }
            }
            do {
                _ = try queue.push(head: chain.head, length: written, memory)
            } catch {
                break
            }
            pushed &+= 1
            let usedIdx = try? memory.load(UInt16.self, at: used &+ 2)
            try require(usedIdx == pushed, Self.name,
                        "used idx is \(usedIdx.map { String($0) } ?? "unreadable") after \(pushed) pushes")
            let element = used &+ 4 &+ 8 &* UInt64((pushed &- 1) % size)
            let head = try? memory.load(UInt32.self, at: element)
            try require(head == UInt32(chain.head), Self.name, "used element \(pushed - 1) holds \(String(describing: head)), not head \(chain.head)")
        }

        // Only the used ring (flags, idx, ring, avail_event) may have changed.
        let usedBytes = 6 + 8 * UInt64(size)
        for (block, base) in [(low, UInt64(0)), (high, Self.highBase)] {
            let now = block.contents
            for i in 0..<now.count where now[i] != (i < image.count ? image[i] : 0) {
                let address = base &+ UInt64(i)
                try require(address &- used < usedBytes, Self.name,
                            "guest byte \(hex(address)) changed outside the used ring at \(hex(used))")
            }
        }
    }
}

func hex(_ v: some BinaryInteger) -> String { "0x" + String(v, radix: 16) }
