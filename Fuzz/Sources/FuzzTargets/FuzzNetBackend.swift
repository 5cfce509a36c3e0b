import Foundation
import SystemPackage
import VirtIO
import VMMSys

/// A tap stand-in for the `virtio-net` target: one SOCK_SEQPACKET socket pair per queue pair,
/// which keeps frame boundaries as a tap queue does (the tests' DatagramBackend, without
/// their test-only helpers). The device reads and writes `first`; the script plays the host's
/// network on `second`, through VMMSys's non-blocking I/O. What the device asks of the backend
/// is checked: offloads only with a vnet header (QEMU: virtio_net_apply_guest_offloads() is
/// reached only with a vnet-header peer), UFO only from a backend that has it, queue indices
/// within the backend's queues.
final class FuzzNetBackend: NetBackend, @unchecked Sendable {
    // @unchecked: `problems` is only touched with `lock` held; the rest is immutable.
    let pairs: [SocketPair]
    let vnetHeader: Bool
    let hasUFO: Bool
    private let lock = NSLock()
    private var problems: [String] = []
    /// Big enough for any frame the device may write (checked against its limit).
    static let receiveBufferSize = 128 << 10

    init(queues: Int, vnetHeader: Bool, ufo: Bool) {
        do { pairs = try (0..<queues).map { _ in try SocketPair(.sequencedPackets) } } catch {
            fatalError("fuzz fixture: \(error)")
        }
        self.vnetHeader = vnetHeader
        hasUFO = ufo
    }

    var queueDescriptors: [FileDescriptor] { pairs.map(\.first) }

    func setOffload(checksum: Bool, tso4: Bool, tso6: Bool, ecn: Bool, ufo: Bool) {
        lock.lock(); defer { lock.unlock() }
        if !vnetHeader { problems.append("offloads set on a backend without a vnet header") }
        if ufo && !hasUFO { problems.append("UFO asked of a backend without UFO") }
    }

    func setQueueEnabled(_ index: Int, _ enabled: Bool) {
        lock.lock(); defer { lock.unlock() }
        if !pairs.indices.contains(index) { problems.append("queue \(index) \(enabled ? "enabled" : "disabled") of \(pairs.count)") }
    }

    var description: String { "fuzz datagram backend" }

    func takeProblems() -> [String] {
        lock.lock(); defer { lock.unlock() }
        defer { problems = [] }
        return problems
    }

    /// The host sends one frame towards the guest (dropped when the socket is full, as a
    /// full tap queue drops).
    func send(_ frame: [UInt8], pair p: Int) {
        guard pairs.indices.contains(p), !frame.isEmpty else { return }
        _ = NonBlockingIO.write(pairs[p].second, frame[...])
    }

    /// Every frame the guest sent on pair `p` and the host has not read yet.
    func receiveAll(pair p: Int, into buffer: inout [UInt8]) -> [[UInt8]] {
        guard pairs.indices.contains(p) else { return [] }
        var frames: [[UInt8]] = []
        while case .transferred(let n) = NonBlockingIO.read(pairs[p].second, into: &buffer, count: buffer.count) {
            frames.append(Array(buffer[0..<n]))
        }
        return frames
    }

    /// Drops every frame still in flight either way (between runs).
    func drain(into buffer: inout [UInt8]) {
        for pair in pairs {
            for fd in [pair.first, pair.second] {
                while case .transferred = NonBlockingIO.read(fd, into: &buffer, count: buffer.count) {}
            }
        }
    }
}
