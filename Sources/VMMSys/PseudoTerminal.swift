internal import CKVM
import SystemPackage
#if canImport(Glibc)
import Glibc
#endif

/// A pseudo-terminal pair for `-chardev pty`: the VMM keeps the master (non-blocking,
/// close-on-exec); a user opens the slave (`path`, e.g. /dev/pts/3) with a terminal program.
/// The slave is put in raw mode, as QEMU's qemu_openpty_raw() does, so bytes pass unchanged.
/// Opened through /dev/ptmx with TIOCSPTLCK/TIOCGPTN (posix_openpt() does not import into
/// Swift). QEMU: chardev/char-pty.c.
public final class PseudoTerminal: Sendable {
    /// The master side.
    public let master: FileDescriptor
    /// The slave's device path.
    public let path: String

    /// `_IOW('T', 0x31, int)` and `_IOR('T', 0x30, unsigned int)` from <asm-generic/ioctls.h>.
    package static let setLock: UInt = 0x4004_5431, getNumber: UInt = 0x8004_5430

    /// Opens a new master and puts its slave in raw mode. QEMU: qemu_openpty_raw().
    /// - Throws: `SystemError` naming the call that failed (open of /dev/ptmx, TIOCSPTLCK,
    ///   TIOCGPTN, or the open of the slave).
    public init() throws(SystemError) {
        let fd = try systemCall("open", arguments: "/dev/ptmx") {
            try FileDescriptor.open(FilePath("/dev/ptmx"), .readWrite, options: [.closeOnExec, .nonBlocking, FileDescriptor.OpenOptions(rawValue: O_NOCTTY)])
        }
        do throws(SystemError) {
            var unlock: Int32 = 0
            // SAFETY: TIOCSPTLCK reads one int from `unlock`.
            _ = try retryingOnInterrupt("ioctl", arguments: "TIOCSPTLCK") {
                unsafe withUnsafeMutableBytes(of: &unlock) { unsafe ckvm_ioctl_ptr(fd.rawValue, Self.setLock, $0.baseAddress) }
            }
            var number: UInt32 = 0
            // SAFETY: TIOCGPTN writes one unsigned int into `number`.
            _ = try retryingOnInterrupt("ioctl", arguments: "TIOCGPTN") {
                unsafe withUnsafeMutableBytes(of: &number) { unsafe ckvm_ioctl_ptr(fd.rawValue, Self.getNumber, $0.baseAddress) }
            }
            let slavePath = "/dev/pts/\(number)"
            path = slavePath
            // Raw mode on the slave (opened once here, then closed: the user opens their own).
            let slave = try systemCall("open", arguments: slavePath) {
                try FileDescriptor.open(FilePath(slavePath), .readWrite, options: [.closeOnExec, FileDescriptor.OpenOptions(rawValue: O_NOCTTY)])
            }
            defer { try? slave.close() }
            var tty = termios()
            // SAFETY: tcgetattr/tcsetattr read and write one `termios`, alive for the calls.
            if unsafe tcgetattr(slave.rawValue, &tty) == 0 {
                unsafe cfmakeraw(&tty)
                _ = unsafe tcsetattr(slave.rawValue, TCSAFLUSH, &tty)
            }
        } catch {
            try? fd.close()
            throw error
        }
        master = fd
    }

    deinit { try? master.close() }
}
