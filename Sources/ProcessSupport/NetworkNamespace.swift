import CKVM
import Synchronization
import VMMSys
#if canImport(Glibc)
import Glibc
#endif

/// A private network namespace for the network tests and `vmm bench net`: a thread leaves the
/// host's network with `unshare(CLONE_NEWNET)` and everything it starts — `ip` commands, vmm,
/// QEMU, sockets, threads — lives in the new namespace, which the kernel removes when the last
/// of them is gone. No packet can reach the host's interfaces, and nothing is left behind even
/// if a run is killed. Needs CAP_SYS_ADMIN and CAP_NET_ADMIN (root).
public enum NetworkNamespace {
    /// Whether this process may make namespaces and taps (root, /dev/net/tun, `ip`).
    public static var available: Bool {
        // SAFETY: the String-to-C-string conversion is valid for the call.
        let tun = unsafe access("/dev/net/tun", R_OK | W_OK) == 0
        return getuid() == 0 && tun && ChildProcess.which("ip") != nil
    }

    /// Runs `body` on a new thread inside a fresh network namespace (loopback up, IPv6 off so
    /// the kernel's router and neighbour chatter stays off the taps), waits for it and returns
    /// what it returned or threw.
    public static func run<T: Sendable>(_ body: @escaping @Sendable () throws -> T) throws -> T {
        let result = Mutex<Result<T, any Error>?>(nil)
        let done = EventNotifier.blockingOnce()
        try HostThread.start(name: "netns") {
            let outcome: Result<T, any Error>
            if unshareNetwork() != 0 {
                outcome = .failure(SystemError(operation: "unshare", arguments: "CLONE_NEWNET", errno: currentErrno()))
            } else {
                outcome = Result {
                    try command(["ip", "link", "set", "lo", "up"])
                    for key in ["all", "default"] { _ = try? command(["sysctl", "-qw", "net.ipv6.conf.\(key).disable_ipv6=1"]) }
                    return try body()
                }
            }
            result.withLock { $0 = outcome }
            done.set()
        }
        done.waitBlocking()
        return try result.withLock { $0! }.get()
    }

    /// Moves the calling thread into a new network namespace: unshare(CLONE_NEWNET) through the
    /// C shim, so it links into the fully static release executable too.
    static func unshareNetwork() -> Int32 { ckvm_unshare(CKVM_CLONE_NEWNET) }

    /// Creates a persistent tap in the calling thread's namespace with `address` (CIDR),
    /// `mtu`, up; `multiQueue` makes it IFF_MULTI_QUEUE; `user` lets that uid attach to it.
    public static func addTap(_ name: String, address: String, mtu: Int = 1500, multiQueue: Bool = false, user: UInt32? = nil) throws {
        var add = ["ip", "tuntap", "add", "dev", name, "mode", "tap"]
        if multiQueue { add.append("multi_queue") }
        if let user { add += ["user", String(user)] }
        try command(add)
        try command(["ip", "addr", "add", address, "dev", name])
        try command(["ip", "link", "set", name, "mtu", String(mtu), "up"])
    }

    /// Runs a command (in the calling thread's namespace); an error carries its output.
    @discardableResult
    public static func command(_ arguments: [String]) throws -> String {
        let run = try ChildProcess.run(arguments, timeoutSeconds: 30)
        guard run.status == 0 else { throw NamespaceError("\(arguments.joined(separator: " ")): status \(run.status): \(run.output)") }
        return run.output
    }
}

/// A namespace or interface that could not be set up: the command and what it printed.
public struct NamespaceError: Error, CustomStringConvertible {
    /// The command line, its status and its output.
    public var description: String
    /// An error saying `d`.
    public init(_ d: String) { description = d }
}

extension EventNotifier {
    /// A notifier used as a one-shot latch between threads.
    static func blockingOnce() -> EventNotifier { try! EventNotifier() }

    /// Waits until the counter is non-zero (polls: the descriptor is non-blocking).
    func waitBlocking() {
        while testAndClear() == 0 {
            var p = pollfd(fd: fileDescriptor.rawValue, events: Int16(POLLIN), revents: 0)
            // SAFETY: poll reads and writes the one pollfd, alive for the call.
            _ = unsafe poll(&p, 1, 100)
        }
    }
}
