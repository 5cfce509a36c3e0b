internal import CKVM
import SystemPackage
#if canImport(Glibc)
import Glibc
#endif

/// A connected pair of unix sockets, both ends close-on-exec and closed with the object. With
/// `.sequencedPackets` each write is one message and each read returns one: a stand-in for a
/// tap queue (one frame per read) in tests, and a private channel to a child process.
package final class SocketPair: Sendable {
    package enum Kind: Sendable {
        case stream
        /// SOCK_SEQPACKET: message boundaries kept, like a tap's frames.
        case sequencedPackets
    }

    package let first: FileDescriptor
    package let second: FileDescriptor

    /// - Parameter nonBlocking: both ends O_NONBLOCK.
    package init(_ kind: Kind = .sequencedPackets, nonBlocking: Bool = true) throws(SystemError) {
        var fds: [Int32] = [-1, -1]
        var type = kind == .stream ? Int32(SOCK_STREAM.rawValue) : Int32(SOCK_SEQPACKET.rawValue)
        type |= Int32(SOCK_CLOEXEC.rawValue)
        if nonBlocking { type |= Int32(SOCK_NONBLOCK.rawValue) }
        // SAFETY: socketpair writes two ints into the two-element array.
        _ = try retryingOnInterrupt("socketpair", arguments: "AF_UNIX") {
            unsafe fds.withUnsafeMutableBufferPointer { unsafe socketpair(AF_UNIX, type, 0, $0.baseAddress) }
        }
        first = FileDescriptor(rawValue: fds[0])
        second = FileDescriptor(rawValue: fds[1])
    }

    deinit {
        try? first.close()
        try? second.close()
    }
}
