internal import CVirtIO
import Memory
import Synchronization
import VMMSys

/// The virtio entropy device: fills the device-writable buffers it is given with random bytes,
/// one `getrandom` per buffer, within the queue's budget and a rate limit.
///
/// The rate limit is QEMU's: at most `maxBytes` per `period`, the period starting with the
/// first request after the last one ended; requests wait in the ring (no kick needed) until the
/// next period. Defaults are QEMU's (`max-bytes` = 2^63 - 1, `period` = 65536 ms): unlimited.
///
/// Deliberate difference: a chain is filled with at most one budget's worth of bytes
/// (`VirtQueueBudget.perWakeUp.bytes`, 256 KiB) and returned with that used length, where QEMU
/// fills it whole; the spec lets the device return fewer bytes, and one guest chain of 1024 ×
/// 4 GiB buffers can then not keep the I/O thread busy. QEMU: virtio-rng (hw/virtio/virtio-rng.c,
/// virtio_rng_process() / chr_read() / check_rate_limit()).
public final class VirtIORNG: VirtIODevice {
    /// QEMU's `max-bytes` default (INT64_MAX).
    public static let unlimitedBytes = UInt64(Int64.max)
    /// QEMU's `period` default in milliseconds.
    public static let defaultPeriodMilliseconds: UInt32 = 1 << 16

    /// Bytes allowed per `period` (QEMU's `max-bytes`).
    public let maxBytes: UInt64
    /// The rate limit's period (QEMU's `period`, in milliseconds there).
    public let period: Duration
    private let quota: Mutex<(remaining: UInt64, periodStart: ContinuousClock.Instant?)>
    /// Reused for every fill (the I/O thread is the only user; the lock documents it).
    private let scratch = Mutex<[UInt8]>([UInt8](repeating: 0, count: VirtIORNG.scratchSize))
    static let scratchSize = VirtQueueBudget.perWakeUp.bytes

    /// - Parameters:
    ///   - maxBytes: bytes allowed per period (QEMU `max-bytes`).
    ///   - periodMilliseconds: the period (QEMU `period`), > 0.
    public init(maxBytes: UInt64 = VirtIORNG.unlimitedBytes, periodMilliseconds: UInt32 = VirtIORNG.defaultPeriodMilliseconds) {
        self.maxBytes = maxBytes
        period = .milliseconds(max(periodMilliseconds, 1))
        quota = Mutex((maxBytes, nil))
    }

    /// VIRTIO_ID_RNG.
    public var deviceType: UInt16 { UInt16(VIRTIO_ID_RNG) }
    /// virtio-rng has no feature bits.
    public var features: UInt64 { 0 }
    /// One request queue of 8 entries. QEMU: virtio_rng_device_realize().
    public var queueSizes: [UInt16] { [8] }          // QEMU: virtio_add_queue(vdev, 8, …)
    /// There is no configuration space: reads give 0.
    public func readConfig(offset: UInt64, size: Int) -> UInt64 { 0 }
    /// There is no configuration space: writes are ignored.
    public func writeConfig(offset: UInt64, value: UInt64, size: Int) {}
    /// Nothing to reset: the rate limit's current period runs on.
    public func reset() {}

    /// Bytes the rate limit allows now, starting a period if none runs; 0 with the instant the
    /// next period starts when the quota is spent. QEMU: virtio_rng_process()'s quota.
    private func allowance(now: ContinuousClock.Instant) -> (bytes: UInt64, resumeAt: ContinuousClock.Instant?) {
        quota.withLock { q in
            if let start = q.periodStart, now >= start + period {
                q.remaining = maxBytes
                q.periodStart = nil
            }
            if q.periodStart == nil { q.periodStart = now }
            if q.remaining == 0, let start = q.periodStart { return (0, start + period) }
            return (q.remaining, nil)
        }
    }

    /// Fills the writable buffers of each chain with random bytes within the budget and the rate
    /// limit; when the quota is spent, asks to be served again when the next period starts. QEMU:
    /// virtio_rng_process() → chr_read().
    public func process(queue index: Int, _ queue: VirtQueue, memory: GuestMemory,
                        budget: inout VirtQueueBudget) throws(VirtQueueError) -> VirtQueueProgress {
        var progress = VirtQueueProgress()
        while !budget.isExhausted {
            let (allowed, resumeAt) = allowance(now: .now)
            if allowed == 0 {
                progress.resumeAt = resumeAt
                break
            }
            guard let chain = try queue.pop(memory) else { break }
            // Everything below is bounded by the budget, the quota and the scratch buffer.
            var limit = min(allowed, UInt64(budget.bytes))
            var written = 0
            for buffer in chain.buffers where buffer.writable && limit > 0 {
                let n = Int(min(UInt64(buffer.length), limit, UInt64(Self.scratchSize)))
                try scratch.withLock { bytes throws(VirtQueueError) in
                    do { try Entropy.fill(&bytes, count: n) } catch { throw .guestMemory("getrandom: \(error)") }
                    try memory.write(bytes[0..<n], into: buffer)
                }
                written += n
                limit -= UInt64(n)
            }
            quota.withLock { $0.remaining -= min($0.remaining, UInt64(written)) }
            budget.charge(bytes: written)
            if try queue.push(head: chain.head, length: UInt32(clamping: written), memory) { progress.interrupt = true }
        }
        return progress
    }
}
