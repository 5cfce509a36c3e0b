internal import CVirtIO

/// The virtio-net feature bits (virtio 1.x §5.1.3) as masks, from <linux/virtio_net.h>'s
/// VIRTIO_NET_F_* bit numbers, with QEMU's `-device virtio-net-pci` property for each.
/// QEMU: the DEFINE_PROP_BIT64 list of virtio_net_properties (hw/net/virtio-net.c).
public enum VirtIONetFeature {
    /// VIRTIO_NET_F_CSUM: the device takes transmitted frames with a partial checksum and completes
    /// it (QEMU property `csum`).
    public static let csum = UInt64(1) << VIRTIO_NET_F_CSUM
    /// VIRTIO_NET_F_GUEST_CSUM: the driver takes received frames with a partial checksum
    /// (`guest_csum`).
    public static let guestCsum = UInt64(1) << VIRTIO_NET_F_GUEST_CSUM
    /// VIRTIO_NET_F_CTRL_GUEST_OFFLOADS: the driver may change the receive offloads through the
    /// control queue (`ctrl_guest_offloads`).
    public static let ctrlGuestOffloads = UInt64(1) << VIRTIO_NET_F_CTRL_GUEST_OFFLOADS
    /// VIRTIO_NET_F_MAC: the configuration space holds the MAC address (always offered, as QEMU
    /// does).
    public static let mac = UInt64(1) << VIRTIO_NET_F_MAC
    /// VIRTIO_NET_F_GUEST_TSO4: the driver takes received TCP/IPv4 segments larger than the MTU
    /// (`guest_tso4`).
    public static let guestTSO4 = UInt64(1) << VIRTIO_NET_F_GUEST_TSO4
    /// VIRTIO_NET_F_GUEST_TSO6: the same for TCP/IPv6 (`guest_tso6`).
    public static let guestTSO6 = UInt64(1) << VIRTIO_NET_F_GUEST_TSO6
    /// VIRTIO_NET_F_GUEST_ECN: received TSO segments may carry ECN (`guest_ecn`).
    public static let guestECN = UInt64(1) << VIRTIO_NET_F_GUEST_ECN
    /// VIRTIO_NET_F_GUEST_UFO: the driver takes received UDP fragments as one datagram
    /// (`guest_ufo`).
    public static let guestUFO = UInt64(1) << VIRTIO_NET_F_GUEST_UFO
    /// VIRTIO_NET_F_HOST_TSO4: the device segments transmitted TCP/IPv4 frames (`host_tso4`).
    public static let hostTSO4 = UInt64(1) << VIRTIO_NET_F_HOST_TSO4
    /// VIRTIO_NET_F_HOST_TSO6: the same for TCP/IPv6 (`host_tso6`).
    public static let hostTSO6 = UInt64(1) << VIRTIO_NET_F_HOST_TSO6
    /// VIRTIO_NET_F_HOST_ECN: transmitted TSO frames may carry ECN (`host_ecn`).
    public static let hostECN = UInt64(1) << VIRTIO_NET_F_HOST_ECN
    /// VIRTIO_NET_F_HOST_UFO: the device fragments transmitted UDP datagrams (`host_ufo`).
    public static let hostUFO = UInt64(1) << VIRTIO_NET_F_HOST_UFO
    /// VIRTIO_NET_F_MRG_RXBUF: a received frame may span several receive chains (`mrg_rxbuf`).
    public static let mrgRxBuf = UInt64(1) << VIRTIO_NET_F_MRG_RXBUF
    /// VIRTIO_NET_F_STATUS: the configuration space holds the link status (`status`).
    public static let status = UInt64(1) << VIRTIO_NET_F_STATUS
    /// VIRTIO_NET_F_CTRL_VQ: there is a control queue (`ctrl_vq`).
    public static let ctrlVQ = UInt64(1) << VIRTIO_NET_F_CTRL_VQ
    /// VIRTIO_NET_F_CTRL_RX: the control queue sets promiscuous and all-multicast modes
    /// (`ctrl_rx`).
    public static let ctrlRx = UInt64(1) << VIRTIO_NET_F_CTRL_RX
    /// VIRTIO_NET_F_CTRL_VLAN: the control queue programs a VLAN filter (`ctrl_vlan`).
    public static let ctrlVLAN = UInt64(1) << VIRTIO_NET_F_CTRL_VLAN
    /// VIRTIO_NET_F_CTRL_RX_EXTRA: the control queue sets the all-unicast and
    /// no-unicast/multicast/broadcast modes (`ctrl_rx_extra`).
    public static let ctrlRxExtra = UInt64(1) << VIRTIO_NET_F_CTRL_RX_EXTRA
    /// VIRTIO_NET_F_GUEST_ANNOUNCE: the device may ask the driver to announce itself
    /// (`guest_announce`).
    public static let guestAnnounce = UInt64(1) << VIRTIO_NET_F_GUEST_ANNOUNCE
    /// VIRTIO_NET_F_MQ: several receive/transmit queue pairs (`mq`, off by default).
    public static let mq = UInt64(1) << VIRTIO_NET_F_MQ
    /// VIRTIO_NET_F_CTRL_MAC_ADDR: the control queue sets the MAC address (`ctrl_mac_addr`).
    public static let ctrlMACAddr = UInt64(1) << VIRTIO_NET_F_CTRL_MAC_ADDR

    /// QEMU 7.2's virtio-net defaults (virtio_net_properties: every bit on but mq, rss, hash
    /// and guest_rsc_ext; `gso` is legacy-only), MAC always.
    public static let qemuDefaults: UInt64 = csum | guestCsum | ctrlGuestOffloads | mac | guestTSO4 | guestTSO6
        | guestECN | guestUFO | hostTSO4 | hostTSO6 | hostECN | hostUFO | mrgRxBuf | status | ctrlVQ | ctrlRx
        | ctrlVLAN | ctrlRxExtra | guestAnnounce | ctrlMACAddr

    /// The receive offloads TUNSETOFFLOAD can express. QEMU: guest_offloads_mask.
    public static let guestOffloads: UInt64 = guestCsum | guestTSO4 | guestTSO6 | guestECN | guestUFO

    /// The `-device virtio-net-pci` property of each bit, QEMU's names.
    public static let properties: [(name: String, bit: UInt64)] = [
        ("csum", csum), ("guest_csum", guestCsum), ("guest_tso4", guestTSO4), ("guest_tso6", guestTSO6),
        ("guest_ecn", guestECN), ("guest_ufo", guestUFO), ("guest_announce", guestAnnounce),
        ("host_tso4", hostTSO4), ("host_tso6", hostTSO6), ("host_ecn", hostECN), ("host_ufo", hostUFO),
        ("mrg_rxbuf", mrgRxBuf), ("status", status), ("ctrl_vq", ctrlVQ), ("ctrl_rx", ctrlRx),
        ("ctrl_vlan", ctrlVLAN), ("ctrl_rx_extra", ctrlRxExtra), ("ctrl_mac_addr", ctrlMACAddr),
        ("ctrl_guest_offloads", ctrlGuestOffloads), ("mq", mq),
    ]
}

/// The control queue's acks, classes and commands (virtio 1.x §5.1.6.5), from
/// <linux/virtio_net.h>'s VIRTIO_NET_OK/ERR and VIRTIO_NET_CTRL_*.
enum VirtIONetControl {
    /// struct virtio_net_ctrl_hdr {class, cmd}, which starts every command.
    static let headerSize = CVIRTIO_NET_CTRL_HDR_SIZE
    static let ok = UInt8(VIRTIO_NET_OK), err = UInt8(VIRTIO_NET_ERR)
    static let classRx = UInt8(VIRTIO_NET_CTRL_RX), classMAC = UInt8(VIRTIO_NET_CTRL_MAC)
    static let classVLAN = UInt8(VIRTIO_NET_CTRL_VLAN), classAnnounce = UInt8(VIRTIO_NET_CTRL_ANNOUNCE)
    static let classMQ = UInt8(VIRTIO_NET_CTRL_MQ), classGuestOffloads = UInt8(VIRTIO_NET_CTRL_GUEST_OFFLOADS)
    static let rxPromisc = UInt8(VIRTIO_NET_CTRL_RX_PROMISC), rxAllMulti = UInt8(VIRTIO_NET_CTRL_RX_ALLMULTI)
    static let rxAllUni = UInt8(VIRTIO_NET_CTRL_RX_ALLUNI), rxNoMulti = UInt8(VIRTIO_NET_CTRL_RX_NOMULTI)
    static let rxNoUni = UInt8(VIRTIO_NET_CTRL_RX_NOUNI), rxNoBroadcast = UInt8(VIRTIO_NET_CTRL_RX_NOBCAST)
    static let macTableSet = UInt8(VIRTIO_NET_CTRL_MAC_TABLE_SET), macAddrSet = UInt8(VIRTIO_NET_CTRL_MAC_ADDR_SET)
    static let vlanAdd = UInt8(VIRTIO_NET_CTRL_VLAN_ADD), vlanDel = UInt8(VIRTIO_NET_CTRL_VLAN_DEL)
    static let announceAck = UInt8(VIRTIO_NET_CTRL_ANNOUNCE_ACK)
    static let mqPairsSet = UInt8(VIRTIO_NET_CTRL_MQ_VQ_PAIRS_SET)
    static let guestOffloadsSet = UInt8(VIRTIO_NET_CTRL_GUEST_OFFLOADS_SET)
    /// VIRTIO_NET_CTRL_MQ_VQ_PAIRS_MIN / _MAX.
    static let pairsMin = Int(VIRTIO_NET_CTRL_MQ_VQ_PAIRS_MIN), pairsMax = Int(VIRTIO_NET_CTRL_MQ_VQ_PAIRS_MAX)
    /// QEMU's MAC filter table (MAC_TABLE_ENTRIES) and VLAN count (MAX_VLAN): QEMU's limits,
    /// not the spec's, so not in the uapi headers.
    static let macTableEntries = 64, maxVLAN = 1 << 12
}

/// A 48-bit Ethernet address.
public struct MACAddress: Sendable, Equatable, Hashable, CustomStringConvertible {
    /// The six bytes, in transmission order.
    public var bytes: (UInt8, UInt8, UInt8, UInt8, UInt8, UInt8)

    /// The address made of `b`, which must hold exactly six bytes (anything else traps: a caller
    /// holding untrusted bytes checks the count first).
    public init(_ b: [UInt8]) {
        precondition(b.count == 6, "a MAC address has 6 bytes")
        bytes = (b[0], b[1], b[2], b[3], b[4], b[5])
    }

    /// The six bytes as an array.
    public var array: [UInt8] { [bytes.0, bytes.1, bytes.2, bytes.3, bytes.4, bytes.5] }

    /// `52:54:00:12:34:56` (hex pairs separated by ':' or '-'), or nil.
    public init?(parsing text: String) {
        let parts = text.split(separator: ":", omittingEmptySubsequences: false)
        let pieces = parts.count == 6 ? parts : text.split(separator: "-", omittingEmptySubsequences: false)
        guard pieces.count == 6 else { return nil }
        var b: [UInt8] = []
        for p in pieces {
            guard (1...2).contains(p.count), let v = UInt8(p, radix: 16) else { return nil }
            b.append(v)
        }
        self.init(b)
    }

    /// `52:54:00:12:34:56`: lowercase hex pairs separated by colons.
    public var description: String {
        array.map { ($0 < 16 ? "0" : "") + String($0, radix: 16) }.joined(separator: ":")
    }

    /// The same six bytes.
    public static func == (a: MACAddress, b: MACAddress) -> Bool { a.array == b.array }
    /// Hashes the six bytes.
    public func hash(into h: inout Hasher) { h.combine(array) }

    /// QEMU's default NIC address, 52:54:00:12:34:56 + index. QEMU: qemu_macaddr_default_if_unset().
    public static func qemuDefault(index: UInt8) -> MACAddress { MACAddress([0x52, 0x54, 0x00, 0x12, 0x34, 0x56 &+ index]) }
    /// Whether QEMU's default allocator could hand this out (a static 52:54:00:12:34:xx).
    /// QEMU: is_static_macaddr().
    public var isQEMUDefaultRange: Bool { bytes.0 == 0x52 && bytes.1 == 0x54 && bytes.2 == 0 && bytes.3 == 0x12 && bytes.4 == 0x34 }
    /// The group bit (the first byte's lowest bit): multicast or broadcast.
    public var isMulticast: Bool { bytes.0 & 1 != 0 }
}
