import Foundation
import ProcessSupport
import SystemPackage
import TestSupport
import VMMSys

/// What the network and chardev tests share: the virtionet flags, a tap set-up, socket clients.
enum NetTest {
    /// Root, /dev/net/tun and `ip`: what a private namespace with a tap needs.
    static var available: Bool { NetworkNamespace.available }
    static let skipReason = "needs root, /dev/net/tun and iproute2 for a private network namespace with a tap"

    /// The host's side of every test network: 10.0.2.2/24 on tap0 (MTU 9000 for the large
    /// frames), 10.0.3.2/24 on the multi-queue tapm.
    static func addTaps() throws {
        try NetworkNamespace.addTap("tap0", address: "10.0.2.2/24", mtu: 9000)
        try NetworkNamespace.addTap("tapm", address: "10.0.3.2/24", mtu: 9000, multiQueue: true)
    }

    /// QEMU's flags for the virtionet kernel on `netdev` (a -netdev value without id).
    static func flags(kernel: String, netdev: String = "tap,ifname=tap0,script=no,downscript=no", device: String = "virtio-net-pci,netdev=n0",
                      append: String = "") -> [String] {
        ["-machine", "accel=kvm", "-nodefaults", "-display", "none", "-serial", "stdio",
         "-device", "isa-debug-exit,iobase=0xf4,iosize=0x4",
         "-netdev", netdev + ",id=n0", "-device", device, "-kernel", kernel, "-append", append]
    }

    /// The guest's serial lines: QEMU's and vmm's own diagnostics dropped (they differ in
    /// wording and go to stderr, which the harness captures with stdout).
    static func guestLines(_ output: String) -> [String] {
        Harness.serialLines(output).filter { !$0.contains(" vmm.") && !$0.hasPrefix("vmm: ") && !$0.isEmpty }
    }

    /// Connects to a unix socket, retrying until it exists (the VMM is starting).
    static func connect(_ path: String, timeout: Duration = .seconds(20)) -> SocketConnection? {
        var connection: SocketConnection?
        pollUntil(timeout: timeout) {
            connection = try? SocketConnection(connectingTo: .unix(path))
            return connection != nil
        }
        return connection
    }

    /// Reads from `connection` until the text received contains `marker` (or the deadline).
    static func read(_ connection: SocketConnection, until marker: String, timeout: Duration = .seconds(20)) -> String {
        var text = ""
        pollUntil(timeout: timeout) {
            var p = pollfd(fd: connection.fileDescriptor.rawValue, events: Int16(POLLIN), revents: 0)
            if poll(&p, 1, 0) > 0, let bytes = try? connection.read(maxBytes: 4096) {
                if bytes.isEmpty { return true }
                text += String(decoding: bytes, as: UTF8.self)
            }
            return text.contains(marker)
        }
        return text
    }

    /// A unique path for a unix socket.
    static func socketPath(_ tag: String) -> String {
        FileManager.default.temporaryDirectory.appendingPathComponent("vmm-\(tag)-\(getpid())-\(UInt32.random(in: 0...UInt32.max))").path
    }
}
