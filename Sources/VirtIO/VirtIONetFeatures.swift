/// virtio-net feature bits (virtio 1.x §5.1.3), the status bits and the control-queue
/// constants, named as Linux's <linux/virtio_net.h> names them.
public enum VirtIONetFeature {
    public static let csum: UInt64 = 1 << 0
    public static let guestCsum: UInt64 = 1 << 1
    public static let ctrlGuestOffloads: UInt64 = 1 << 2
    public static let mac: UInt64 = 1 << 5
    public static let guestTSO4: UInt64 = 1 << 7
    public static let guestTSO6: UInt64 = 1 << 8
    public static let guestECN: UInt64 = 1 << 9
    public static let guestUFO: UInt64 = 1 << 10
    public static let hostTSO4: UInt64 = 1 << 11
    public static let hostTSO6: UInt64 = 1 << 12
    public static let hostECN: UInt64 = 1 << 13
    public static let hostUFO: UInt64 = 1 << 14
    public static let mrgRxBuf: UInt64 = 1 << 15
    public static let status: UInt64 = 1 << 16
    public static let ctrlVQ: UInt64 = 1 << 17
    public static let ctrlRx: UInt64 = 1 << 18
    public static let ctrlVLAN: UInt64 = 1 << 19
    public static let ctrlRxExtra: UInt64 = 1 << 20
    public static let guestAnnounce: UInt64 = 1 << 21
    public static let mq: UInt64 = 1 << 22
    public static let ctrlMACAddr: UInt64 = 1 << 23

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

/// The control queue's classes, commands and acks (virtio 1.x §5.1.6.5).
enum VirtIONetControl {
    static let ok: UInt8 = 0, err: UInt8 = 1
    static let classRx: UInt8 = 0, classMAC: UInt8 = 1, classVLAN: UInt8 = 2, classAnnounce: UInt8 = 3
    static let classMQ: UInt8 = 4, classGuestOffloads: UInt8 = 5
    static let rxPromisc: UInt8 = 0, rxAllMulti: UInt8 = 1, rxAllUni: UInt8 = 2, rxNoMulti: UInt8 = 3
    static let rxNoUni: UInt8 = 4, rxNoBroadcast: UInt8 = 5
    static let macTableSet: UInt8 = 0, macAddrSet: UInt8 = 1
    static let vlanAdd: UInt8 = 0, vlanDel: UInt8 = 1
    static let announceAck: UInt8 = 0
    static let mqPairsSet: UInt8 = 0
    static let guestOffloadsSet: UInt8 = 0
    /// VIRTIO_NET_CTRL_MQ_VQ_PAIRS_MIN / _MAX.
    static let pairsMin = 1, pairsMax = 0x8000
    /// QEMU's MAC filter table (MAC_TABLE_ENTRIES) and VLAN count (MAX_VLAN).
    static let macTableEntries = 64, maxVLAN = 1 << 12
}

/// A 48-bit Ethernet address.
public struct MACAddress: Sendable, Equatable, Hashable, CustomStringConvertible {
    public var bytes: (UInt8, UInt8, UInt8, UInt8, UInt8, UInt8)

    public init(_ b: [UInt8]) {
        precondition(b.count == 6, "a MAC address has 6 bytes")
        bytes = (b[0], b[1], b[2], b[3], b[4], b[5])
    }

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

    public var description: String {
        array.map { ($0 < 16 ? "0" : "") + String($0, radix: 16) }.joined(separator: ":")
    }

    public static func == (a: MACAddress, b: MACAddress) -> Bool { a.array == b.array }
    public func hash(into h: inout Hasher) { h.combine(array) }

    /// QEMU's default NIC address, 52:54:00:12:34:56 + index. QEMU: qemu_macaddr_default_if_unset().
    public static func qemuDefault(index: UInt8) -> MACAddress { MACAddress([0x52, 0x54, 0x00, 0x12, 0x34, 0x56 &+ index]) }
    /// Whether QEMU's default allocator could hand this out (a static 52:54:00:12:34:xx).
    /// QEMU: is_static_macaddr().
    public var isQEMUDefaultRange: Bool { bytes.0 == 0x52 && bytes.1 == 0x54 && bytes.2 == 0 && bytes.3 == 0x12 && bytes.4 == 0x34 }
    public var isMulticast: Bool { bytes.0 & 1 != 0 }
}
