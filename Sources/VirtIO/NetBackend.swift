import SystemPackage
import VMMSys

/// Where a virtio-net device's frames go and come from: one non-blocking descriptor per queue
/// pair that reads and writes whole frames (a tap queue; a datagram socket in tests), each frame
/// led by a 12-byte virtio-net header when `vnetHeader` is set. QEMU: the NIC's peer
/// NetClientState (`-netdev tap`).
public protocol NetBackend: Sendable, CustomStringConvertible {
    /// One per queue pair (frames of pair i go through descriptor i).
    var queueDescriptors: [FileDescriptor] { get }
    /// Frames carry a `virtio_net_hdr_mrg_rxbuf` (12 bytes) ahead of the Ethernet header.
    /// QEMU: qemu_has_vnet_hdr().
    var vnetHeader: Bool { get }
    /// The backend takes UDP fragmentation offload. QEMU: qemu_has_ufo().
    var hasUFO: Bool { get }
    /// The offloads the guest accepts on receive. QEMU: qemu_set_offload().
    func setOffload(checksum: Bool, tso4: Bool, tso6: Bool, ecn: Bool, ufo: Bool)
    /// Steers frames to queue pair `index` or stops doing so. QEMU: tap_enable()/tap_disable().
    func setQueueEnabled(_ index: Int, _ enabled: Bool)
}

/// The tap as a virtio-net backend. UFO is probed once, as QEMU's net_tap_fd_init() does.
public final class TapNetBackend: NetBackend {
    public let tap: TapDevice
    public let hasUFO: Bool

    public init(_ tap: TapDevice) {
        self.tap = tap
        hasUFO = tap.vnetHeader && tap.probeUFO()
    }

    public var queueDescriptors: [FileDescriptor] { tap.queues.map(\.fileDescriptor) }
    public var vnetHeader: Bool { tap.vnetHeader }
    public func setOffload(checksum: Bool, tso4: Bool, tso6: Bool, ecn: Bool, ufo: Bool) {
        guard tap.vnetHeader else { return }
        tap.setOffload(checksum: checksum, tso4: tso4, tso6: tso6, ecn: ecn, ufo: ufo)
    }
    public func setQueueEnabled(_ index: Int, _ enabled: Bool) { try? tap.setQueueEnabled(index, enabled) }
    public var description: String { "tap '\(tap.name)'" }
}
