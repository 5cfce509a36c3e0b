internal import CKVM
import SystemPackage
#if canImport(Glibc)
import Glibc
#endif

/// The TUN/TAP ABI from `<linux/if_tun.h>` and `<linux/if.h>`, spelled out: its request
/// numbers are `_IOW`/`_IOR` macros, which do not import into Swift. `TapABITests` checks every
/// value against the C headers.
package enum TunABI {
    /// `_IOC(dir, 'T', nr, 4)`: every TUN request here carries an int-sized argument.
    static func request(_ direction: UInt, _ number: UInt) -> UInt {
        direction << 30 | 4 << 16 | UInt(UInt8(ascii: "T")) << 8 | number
    }
    static let write: UInt = 1, read: UInt = 2
    package static let setIFF = request(write, 202)          // TUNSETIFF
    package static let getFeatures = request(read, 207)      // TUNGETFEATURES
    package static let setOffload = request(write, 208)      // TUNSETOFFLOAD
    package static let getIFF = request(read, 210)           // TUNGETIFF
    package static let getVnetHeaderSize = request(read, 215) // TUNGETVNETHDRSZ
    package static let setVnetHeaderSize = request(write, 216) // TUNSETVNETHDRSZ
    package static let setQueue = request(write, 217)        // TUNSETQUEUE

    package static let iffTap: UInt16 = 0x0002, iffNoPI: UInt16 = 0x1000, iffVnetHeader: UInt16 = 0x4000
    package static let iffMultiQueue: UInt16 = 0x0100, iffAttachQueue: UInt16 = 0x0200, iffDetachQueue: UInt16 = 0x0400
    /// TUNSETOFFLOAD bits.
    package static let offloadChecksum: UInt32 = 0x01, offloadTSO4: UInt32 = 0x02, offloadTSO6: UInt32 = 0x04
    package static let offloadTSOECN: UInt32 = 0x08, offloadUFO: UInt32 = 0x10
    /// `struct ifreq`: 40 bytes on x86-64, the name (IFNAMSIZ = 16) first, the flags (a short) at 16.
    package static let ifreqSize = 40, nameSize = 16, flagsOffset = 16
}

/// Why a tap could not be opened: one line for the user, in QEMU's words where QEMU has them
/// ("could not configure /dev/net/tun (NAME): Operation not permitted"), with what to do.
public struct TapError: Error, CustomStringConvertible, Sendable, Equatable {
    /// The message, naming the device and what to do.
    public var description: String
    /// The errno behind it, when a call failed (nil for a refusal of this layer's own, e.g. a bad
    /// name).
    public var code: Errno?
    /// An error saying `description`, caused by `code`.
    public init(_ description: String, code: Errno? = nil) {
        self.description = description
        self.code = code
    }
}

/// What the user asked for the virtio-net header on the tap (`vnet_hdr=`).
public enum TapVnetHeader: Sendable, Equatable {
    /// Use it when the kernel has it (QEMU's default).
    case auto
    /// Required: an error when the kernel lacks IFF_VNET_HDR.
    case on
    /// Never: plain Ethernet frames, no offloads.
    case off
}

/// One queue of a tap: a non-blocking, close-on-exec descriptor of /dev/net/tun attached to
/// the interface, closed with the object.
public final class TapQueue: Sendable {
    /// The queue's /dev/net/tun descriptor: frames are read and written whole, one per call.
    public let fileDescriptor: FileDescriptor
    init(_ fd: FileDescriptor) { fileDescriptor = fd }
    deinit { try? fileDescriptor.close() }
}

/// A Linux tap interface opened as QEMU's `-netdev tap` opens it: IFF_TAP | IFF_NO_PI, with
/// IFF_VNET_HDR when available (each frame then carries a `virtio_net_hdr` — checksum and
/// segmentation offload metadata), and IFF_MULTI_QUEUE with one descriptor per queue when
/// there is more than one. The interface must be configured (addresses, up) by the caller: no
/// helper scripts are ever run. QEMU: net/tap.c, net/tap-linux.c (tap_open, tap_fd_set_offload,
/// tap_fd_set_vnet_hdr_len, tap_fd_enable/disable).
public final class TapDevice: Sendable {
    /// The interface name.
    public let name: String
    /// One per queue.
    public let queues: [TapQueue]
    /// Frames carry a virtio-net header (IFF_VNET_HDR).
    public let vnetHeader: Bool
    /// The kernel's TUNGETFEATURES (0 if it would not say).
    public let kernelFeatures: UInt32

    /// Opens (and, as root, creates) tap `name` with `queues` queues. Errors name the device and
    /// say what to do: a name the kernel refuses, missing permission, an interface that is not a
    /// tap, one that is busy. QEMU: tap_open() in net/tap-linux.c.
    public static func open(name: String, queues: Int = 1, vnetHeader: TapVnetHeader = .auto) throws(TapError) -> TapDevice {
        guard queues >= 1 else { throw TapError("queues=\(queues): at least one queue") }
        try checkName(name)
        var fds: [TapQueue] = []
        var actualName = name
        var vnet = false
        var features: UInt32 = 0
        for q in 0..<queues {
            let fd: FileDescriptor
            do {
                fd = try systemCall("open", arguments: "/dev/net/tun") {
                    try FileDescriptor.open(FilePath("/dev/net/tun"), .readWrite, options: [.closeOnExec, .nonBlocking])
                }
            } catch {
                switch error.code {
                case .noSuchFileOrDirectory, .noSuchAddressOrDevice:
                    throw TapError("could not open /dev/net/tun: \(error.code) (the kernel has no TUN/TAP support loaded: modprobe tun)", code: error.code)
                case .permissionDenied, .notPermitted:
                    throw TapError("could not open /dev/net/tun: \(error.code) (opening it needs CAP_NET_ADMIN or access to the device node)", code: error.code)
                default:
                    throw TapError("could not open /dev/net/tun: \(error.code)", code: error.code)
                }
            }
            let queue = TapQueue(fd)
            if q == 0 {
                var f: UInt32 = 0
                // SAFETY: TUNGETFEATURES writes one unsigned int into `f`.
                let rc = unsafe withUnsafeMutableBytes(of: &f) { unsafe ckvm_ioctl_ptr(fd.rawValue, TunABI.getFeatures, $0.baseAddress) }
                features = rc == 0 ? f : 0
                let hasVnet = features & UInt32(TunABI.iffVnetHeader) != 0
                if vnetHeader == .on && !hasVnet {
                    throw TapError("vnet_hdr=1 requested, but no kernel support for IFF_VNET_HDR available")
                }
                vnet = vnetHeader != .off && hasVnet
                if queues > 1 && features & UInt32(TunABI.iffMultiQueue) == 0 {
                    throw TapError("multiqueue required, but no kernel support for IFF_MULTI_QUEUE available")
                }
            }
            var flags = TunABI.iffTap | TunABI.iffNoPI
            if vnet { flags |= TunABI.iffVnetHeader }
            if queues > 1 { flags |= TunABI.iffMultiQueue }
            var request = ifreq(name: actualName, flags: flags)
            // SAFETY: TUNSETIFF reads and writes one `struct ifreq` (40 bytes, the array's size).
            let rc = unsafe request.withUnsafeMutableBytes { unsafe ckvm_ioctl_ptr(fd.rawValue, TunABI.setIFF, $0.baseAddress) }
            if rc != 0 { throw setIFFError(actualName, queues: queues, errno: Errno(rawValue: currentErrno())) }
            actualName = ifreqName(request)
            fds.append(queue)
        }
        let device = TapDevice(name: actualName, queues: fds, vnetHeader: vnet, features: features)
        if vnet { try device.setVnetHeaderSize(12) }
        return device
    }

    /// Adopts descriptors of /dev/net/tun the caller already attached (QEMU's `fd=`/`fds=`):
    /// each must be a tap; the virtio-net header is used when the descriptors have it.
    public static func adopt(_ raw: [Int32], vnetHeader: TapVnetHeader = .auto) throws(TapError) -> TapDevice {
        guard !raw.isEmpty else { throw TapError("fd=: no descriptor given") }
        var queues: [TapQueue] = []
        var name = "", hasHeader = false
        for (i, n) in raw.enumerated() {
            guard NonBlockingIO.isOpen(n) else { throw TapError("fd=\(n): not an open descriptor") }
            let fd = FileDescriptor(rawValue: n)
            var request = [UInt8](repeating: 0, count: TunABI.ifreqSize)
            // SAFETY: TUNGETIFF writes one `struct ifreq` (40 bytes, the array's size).
            let rc = unsafe request.withUnsafeMutableBytes { unsafe ckvm_ioctl_ptr(fd.rawValue, TunABI.getIFF, $0.baseAddress) }
            let flags = UInt16(request[TunABI.flagsOffset]) | UInt16(request[TunABI.flagsOffset + 1]) << 8
            guard rc == 0, flags & TunABI.iffTap != 0 else { throw TapError("fd=\(n): not a tap device (TUNGETIFF)") }
            let has = flags & TunABI.iffVnetHeader != 0
            if i == 0 {
                name = ifreqName(request)
                hasHeader = has
            } else if has != hasHeader {
                throw TapError("fds=: the descriptors disagree on IFF_VNET_HDR")
            }
            do { try NonBlockingIO.setNonBlocking(fd) } catch { throw TapError("fd=\(n): \(error)") }
            queues.append(TapQueue(fd))
        }
        // The header is a property of the descriptor: with it, every frame carries one.
        if vnetHeader == .on && !hasHeader { throw TapError("vnet_hdr=1 requested, but fd \(raw[0]) has no IFF_VNET_HDR") }
        if vnetHeader == .off && hasHeader { throw TapError("vnet_hdr=off, but fd \(raw[0]) was opened with IFF_VNET_HDR") }
        let vnet = hasHeader
        let device = TapDevice(name: name, queues: queues, vnetHeader: vnet, features: 0)
        if vnet { try device.setVnetHeaderSize(12) }
        return device
    }

    private init(name: String, queues: [TapQueue], vnetHeader: Bool, features: UInt32) {
        self.name = name
        self.queues = queues
        self.vnetHeader = vnetHeader
        kernelFeatures = features
    }

    /// Sets the virtio-net header size the tap reads and writes (10, or 12 with `num_buffers`,
    /// as every virtio 1.x driver uses). QEMU: tap_fd_set_vnet_hdr_len().
    public func setVnetHeaderSize(_ size: Int32) throws(TapError) {
        for q in queues {
            var v = size
            // SAFETY: TUNSETVNETHDRSZ reads one int from `v`.
            let rc = unsafe withUnsafeMutableBytes(of: &v) { unsafe ckvm_ioctl_ptr(q.fileDescriptor.rawValue, TunABI.setVnetHeaderSize, $0.baseAddress) }
            if rc != 0 { throw TapError("TUNSETVNETHDRSZ \(size) on tap '\(name)': \(Errno(rawValue: currentErrno()))") }
        }
    }

    /// The offloads the guest can take (TUNSETOFFLOAD): with `checksum`, TSO4/TSO6 (+ECN) and
    /// UFO as asked; if the kernel refuses UFO, retried without it. Returns what was applied.
    /// QEMU: tap_fd_set_offload().
    @discardableResult
    public func setOffload(checksum: Bool, tso4: Bool, tso6: Bool, ecn: Bool, ufo: Bool) -> UInt32 {
        var offload: UInt32 = 0
        if checksum {
            offload |= TunABI.offloadChecksum
            if tso4 { offload |= TunABI.offloadTSO4 }
            if tso6 { offload |= TunABI.offloadTSO6 }
            if (tso4 || tso6) && ecn { offload |= TunABI.offloadTSOECN }
            if ufo { offload |= TunABI.offloadUFO }
        }
        guard let fd = queues.first?.fileDescriptor else { return 0 }
        if ckvm_ioctl_int(fd.rawValue, TunABI.setOffload, UInt(offload)) == 0 { return offload }
        offload &= ~TunABI.offloadUFO
        return ckvm_ioctl_int(fd.rawValue, TunABI.setOffload, UInt(offload)) == 0 ? offload : 0
    }

    /// Whether the tap accepts UFO (TUN_F_CSUM | TUN_F_UFO), leaving all offloads off after.
    /// QEMU: tap_probe_has_ufo() then qemu_set_offload(nc, 0, …).
    public func probeUFO() -> Bool {
        guard let fd = queues.first?.fileDescriptor else { return false }
        let ok = ckvm_ioctl_int(fd.rawValue, TunABI.setOffload, UInt(TunABI.offloadChecksum | TunABI.offloadUFO)) == 0
        _ = ckvm_ioctl_int(fd.rawValue, TunABI.setOffload, 0)
        return ok
    }

    /// Attaches (the kernel steers packets to it) or detaches queue `index`. Only for a
    /// multi-queue tap. QEMU: tap_fd_enable() / tap_fd_disable().
    public func setQueueEnabled(_ index: Int, _ enabled: Bool) throws(TapError) {
        guard queues.count > 1, queues.indices.contains(index) else { return }
        var request = [UInt8](repeating: 0, count: TunABI.ifreqSize)
        let flags = enabled ? TunABI.iffAttachQueue : TunABI.iffDetachQueue
        request[TunABI.flagsOffset] = UInt8(truncatingIfNeeded: flags)
        request[TunABI.flagsOffset + 1] = UInt8(truncatingIfNeeded: flags >> 8)
        // SAFETY: TUNSETQUEUE reads one `struct ifreq` (40 bytes, the array's size).
        let rc = unsafe request.withUnsafeMutableBytes { unsafe ckvm_ioctl_ptr(queues[index].fileDescriptor.rawValue, TunABI.setQueue, $0.baseAddress) }
        let e = currentErrno()
        // Attaching an attached queue or detaching a detached one is EINVAL: already so.
        if rc != 0 && e != EINVAL {
            throw TapError("could not \(enabled ? "enable" : "disable") queue \(index) of tap '\(name)': \(Errno(rawValue: e))")
        }
    }

    /// The kernel's rules for an interface name (dev_valid_name()).
    public static func checkName(_ name: String) throws(TapError) {
        let bytes = Array(name.utf8)
        guard bytes.count < TunABI.nameSize else {
            throw TapError("ifname '\(name)' is too long: an interface name has at most \(TunABI.nameSize - 1) bytes")
        }
        guard name != "." && name != "..", !bytes.contains(where: { $0 == UInt8(ascii: "/") || $0 == UInt8(ascii: ":") || $0 <= 0x20 }) else {
            throw TapError("ifname '\(name)' is not a valid interface name (no '/', ':', spaces, '.' or '..')")
        }
    }

    /// A `struct ifreq` with the name and flags set.
    static func ifreq(name: String, flags: UInt16) -> [UInt8] {
        var b = [UInt8](repeating: 0, count: TunABI.ifreqSize)
        for (i, c) in name.utf8.prefix(TunABI.nameSize - 1).enumerated() { b[i] = c }
        b[TunABI.flagsOffset] = UInt8(truncatingIfNeeded: flags)
        b[TunABI.flagsOffset + 1] = UInt8(truncatingIfNeeded: flags >> 8)
        return b
    }

    static func ifreqName(_ b: [UInt8]) -> String {
        String(decoding: b.prefix(TunABI.nameSize).prefix { $0 != 0 }, as: UTF8.self)
    }

    /// QEMU's message for a refused TUNSETIFF, and what the errno means here. Whether the
    /// interface exists is asked of the calling thread's network namespace (if_nametoindex),
    /// not of /sys, which shows the namespace it was mounted in.
    static func setIFFError(_ name: String, queues: Int, errno: Errno) -> TapError {
        let head = "could not configure /dev/net/tun (\(name)): \(errno)"
        // SAFETY: the String-to-C-string conversion is valid for the call.
        let exists = unsafe if_nametoindex(name) != 0
        let hint: String
        switch errno {
        case .notPermitted, .permissionDenied:
            hint = exists
                ? "tap '\(name)' exists but belongs to another user or group (ip tuntap add dev \(name) mode tap user USER)"
                : "tap '\(name)' does not exist, and creating it needs CAP_NET_ADMIN (create it first: ip tuntap add dev \(name) mode tap user USER)"
        case .resourceBusy:
            hint = "tap '\(name)' is in use by another process"
        case .invalidArgument:
            hint = exists ? "'\(name)' exists but is not a \(queues > 1 ? "multi-queue" : "single-queue") tap device (another kind of interface, a tun, or the other queue mode)"
                : "the kernel refused the name or flags"
        default:
            hint = ""
        }
        return TapError(hint.isEmpty ? head : "\(head): \(hint)", code: errno)
    }
}
