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
    /// The tap whose queues carry the frames.
    public let tap: TapDevice
    /// Whether the tap took UDP fragmentation offload when probed (never without a vnet header).
    public let hasUFO: Bool

    /// A backend over `tap`, probing UFO once. QEMU: net_tap_fd_init() → tap_probe_has_ufo().
    public init(_ tap: TapDevice) {
        self.tap = tap
        hasUFO = tap.vnetHeader && tap.probeUFO()
    }

    /// The tap's queue descriptors, one per queue pair.
    public var queueDescriptors: [FileDescriptor] { tap.queues.map(\.fileDescriptor) }
    /// Whether the tap was opened with IFF_VNET_HDR.
    public var vnetHeader: Bool { tap.vnetHeader }
    /// TUNSETOFFLOAD with the guest's receive offloads (nothing without a vnet header). QEMU:
    /// tap_fd_set_offload().
    public func setOffload(checksum: Bool, tso4: Bool, tso6: Bool, ecn: Bool, ufo: Bool) {
        guard tap.vnetHeader else { return }
        tap.setOffload(checksum: checksum, tso4: tso4, tso6: tso6, ecn: ecn, ufo: ufo)
    }
    /// Attaches or detaches tap queue `index` (TUNSETQUEUE); a refusal leaves it as it was. QEMU:
    /// tap_enable()/tap_disable().
    public func setQueueEnabled(_ index: Int, _ enabled: Bool) { try? tap.setQueueEnabled(index, enabled) }
    /// `tap 'NAME'`, for log lines and errors.
    public var description: String { "tap '\(tap.name)'" }
}
