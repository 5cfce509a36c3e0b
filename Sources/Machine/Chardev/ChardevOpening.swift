import Devices
import Logging
import SystemPackage
import VMMSys

extension ChardevSpec {
    /// Opens the backend as QEMU does at start: files created (truncated unless append), FIFOs
    /// opened (PATH.in/PATH.out, else PATH both ways), a pty allocated and its path printed, a
    /// server socket listening (and, without `wait=off`, the first client awaited), a client
    /// socket connected. Errors are QEMU's ("Could not open '...'", "Failed to connect to ...").
    /// QEMU: qemu_chardev_new() and each backend's open.
    func open(readsStdin: Bool, logger: Logger) throws(MachineError) -> Chardev {
        let context = "-chardev \(id)"
        switch backend {
        case .null:
            return Chardev(id: id, transport: .null, logger: logger)
        case .stdio:
            return Chardev(id: id, transport: .stdio(readsInput: readsStdin), logger: logger)
        case .file(let path), .appendFile(let path):
            let append: Bool
            if case .appendFile = backend { append = true } else { append = false }
            do {
                let fd = try systemCall("open", arguments: path) {
                    try FileDescriptor.open(FilePath(path), .writeOnly, options: append ? [.create, .append, .closeOnExec] : [.create, .truncate, .closeOnExec],
                                            permissions: [.ownerReadWrite, .groupRead, .otherRead])
                }
                return Chardev(id: id, transport: .file(fd), logger: logger)
            } catch {
                throw MachineError("\(context): Could not open '\(path)': \(error.code)")
            }
        case .pipe(let path):
            func open(_ p: String) -> FileDescriptor? {
                try? FileDescriptor.open(FilePath(p), .readWrite, options: [.closeOnExec, .nonBlocking])
            }
            if let input = open(path + ".in") {
                guard let output = open(path + ".out") else {
                    try? input.close()
                    throw MachineError("\(context): Could not open '\(path).out'")
                }
                return Chardev(id: id, transport: .pipe(input: input, output: output), logger: logger)
            }
            guard let both = open(path) else { throw MachineError("\(context): Could not open '\(path)': \(Errno(rawValue: currentErrno()))") }
            return Chardev(id: id, transport: .pipe(input: both, output: both), logger: logger)
        case .pty:
            let pty: PseudoTerminal
            do { pty = try PseudoTerminal() } catch { throw MachineError("\(context): Failed to create PTY: \(error.code)") }
            writeFully(2, Array("vmm: char device redirected to \(pty.path) (label \(id))\n".utf8))
            return Chardev(id: id, transport: .pty(pty), logger: logger)
        case .socket(let address, let server, let wait):
            if server {
                let listener: SocketListener
                do { listener = try SocketListener(address) } catch {
                    throw MachineError("\(context): Failed to bind socket to \(address.pathOrAddress): \(error.code)")
                }
                var first: SocketConnection?
                if wait {
                    writeFully(2, Array("vmm: \(context): info: waiting for connection on: disconnected:\(address),server=on\n".utf8))
                    first = try? listener.accept()
                }
                return Chardev(id: id, transport: .server(listener), initialClient: first, logger: logger)
            }
            do {
                return Chardev(id: id, transport: .client(try SocketConnection(connectingTo: address)), logger: logger)
            } catch {
                throw MachineError("\(context): Failed to connect to '\(address.pathOrAddress)': \(error.code)")
            }
        }
    }
}

extension SocketAddress {
    /// The path, or host:port, as QEMU's messages show it.
    var pathOrAddress: String {
        switch self {
        case .unix(let p): p
        case .tcp(let h, let p): "\(h):\(p)"
        }
    }
}
