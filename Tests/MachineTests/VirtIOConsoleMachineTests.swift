import Devices
import Foundation
import Memory
import ProcessSupport
import Synchronization
import SystemPackage
import Testing
import TestSupport
import VirtIO
import VMMSys
@testable import Machine

/// virtio-serial with a console port and a named port over unix sockets, and the chardev
/// backends (pty, pipe, TCP, client sockets, files, -serial unix:) end to end: the
/// virtioconsole kernel echoes lines on its console and greets on the named port once the host
/// side connects; vmm and QEMU give the same session and the same serial lines.
@Suite(.enabled(if: Harness.kvmAvailable, "requires read/write access to /dev/kvm"),
       .enabled(if: GuestKernels.toolchainAvailable, "needs gcc, as and ld to build the test kernels"))
struct VirtIOConsoleMachineTests {
    static func flags(kernel: String, console: String, port: String) -> [String] {
        ["-machine", "accel=kvm", "-nodefaults", "-display", "none", "-serial", "stdio",
         "-device", "isa-debug-exit,iobase=0xf4,iosize=0x4", "-chardev", console, "-chardev", port,
         "-device", "virtio-serial-pci", "-device", "virtconsole,chardev=c0",
         "-device", "virtserialport,chardev=c1,name=org.swiftvmm.test", "-kernel", kernel]
    }

    struct Session: Equatable {
        var greeting = "", echoes = "", status: Int32 = -1, lines: [String] = []
    }

    /// Runs one VMM with the console on unix socket c0 and the named port on c1 (servers,
    /// wait=off), greets, echoes two lines, quits.
    static func session(_ binary: String, kernel: String) throws -> Session {
        let con = NetTest.socketPath("con"), port = NetTest.socketPath("port")
        let vm = try BackgroundProcess([binary] + flags(kernel: kernel, console: "socket,id=c0,path=\(con),server=on,wait=off",
                                                        port: "socket,id=c1,path=\(port),server=on,wait=off"))
        var s = Session()
        // Both connections stay open until the VMM has exited: closing the named port's socket
        // earlier would race the guest's exit ("port 1 host closed" printed or not).
        var connections: [AnyObject] = []
        if let p1 = NetTest.connect(port) {
            connections.append(p1)
            s.greeting = NetTest.read(p1, until: "\n")
            if let c = NetTest.connect(con) {
                connections.append(c)
                c.write(Array("hello\n".utf8))
                s.echoes = NetTest.read(c, until: "echo: hello\n")
                c.write(Array("second line\r\nquit\n".utf8))
                s.echoes += NetTest.read(c, until: "echo: second line\n")
            }
        }
        s.status = vm.wait(timeoutSeconds: 60)
        withExtendedLifetime(connections) {}
        s.lines = NetTest.guestLines(vm.output)
        return s
    }

    @Test func consoleAndNamedPortOverUnixSocketsMatchQEMU() throws {
        let kernel = try GuestKernels.path("virtioconsole")
        let mine = try Self.session(try #require(Harness.vmmPath), kernel: kernel)
        #expect(mine.greeting == "hello from the guest on port 1\n")
        #expect(mine.echoes == "echo: hello\necho: second line\n")
        #expect(mine.status == 1 && mine.lines.contains("PASS virtioconsole"), "\(mine.lines)")
        #expect(mine.lines.contains("port 1 name org.swiftvmm.test") && mine.lines.contains("port 0 is a console"))
        guard let qemu = Harness.qemuPath else { return }
        let theirs = try Self.session(qemu, kernel: kernel)
        #expect(mine == theirs, "vmm: \(mine)\nqemu: \(theirs)")
    }

    /// The console on other backends: a pty (its path printed at start), a FIFO pair, TCP on
    /// 127.0.0.1, a client socket connecting to a listener the test owns.
    @Test(arguments: ["pty", "pipe", "tcp", "client"])
    func consoleBackends(_ kind: String) throws {
        let kernel = try GuestKernels.path("virtioconsole")
        let vmm = try #require(Harness.vmmPath)
        let base = NetTest.socketPath(kind)
        var console = "", listener: SocketListener?
        let tcpPort = UInt16.random(in: 20000...60000)
        switch kind {
        case "pty": console = "pty,id=c0"
        case "pipe":
            for suffix in [".in", ".out"] { #expect(mkfifo(base + suffix, 0o600) == 0) }
            console = "pipe,id=c0,path=\(base)"
        case "tcp": console = "socket,id=c0,host=127.0.0.1,port=\(tcpPort),server=on,wait=off"
        default:
            listener = try SocketListener(.unix(base))
            console = "socket,id=c0,path=\(base)"
        }
        defer { for suffix in ["", ".in", ".out"] { unlink(base + suffix) } }
        let vm = try BackgroundProcess([vmm] + Self.flags(kernel: kernel, console: console, port: "null,id=c1"))
        var reply = ""
        switch kind {
        case "pty":
            var path: String?
            pollUntil { path = vm.output.split(separator: "\n").first { $0.contains("char device redirected to") }
                .flatMap { $0.split(separator: " ").first { $0.hasPrefix("/dev/pts/") } }.map(String.init); return path != nil }
            let slave = open(try #require(path), O_RDWR | O_NOCTTY)
            try #require(slave >= 0)
            defer { close(slave) }
            _ = "hi\nquit\n".withCString { write(slave, $0, 8) }
            var buffer = [UInt8](repeating: 0, count: 256)
            pollUntil {
                var p = pollfd(fd: slave, events: Int16(POLLIN), revents: 0)
                if poll(&p, 1, 0) > 0 { let n = read(slave, &buffer, 256); if n > 0 { reply += String(decoding: buffer[0..<n], as: UTF8.self) } }
                return reply.contains("echo: hi\n")
            }
        case "pipe":
            let input = open(base + ".in", O_WRONLY), output = open(base + ".out", O_RDONLY | O_NONBLOCK)
            defer { close(input); close(output) }
            _ = "hi\nquit\n".withCString { write(input, $0, 8) }
            var buffer = [UInt8](repeating: 0, count: 256)
            pollUntil {
                let n = read(output, &buffer, 256)
                if n > 0 { reply += String(decoding: buffer[0..<n], as: UTF8.self) }
                return reply.contains("echo: hi\n")
            }
        default:
            var connection: SocketConnection?
            if let listener { connection = try listener.accept() } else {
                pollUntil { connection = try? SocketConnection(connectingTo: .tcp(host: "127.0.0.1", port: tcpPort)); return connection != nil }
            }
            let c = try #require(connection)
            c.write(Array("hi\nquit\n".utf8))
            reply = NetTest.read(c, until: "echo: hi\n")
        }
        #expect(reply.hasSuffix("echo: hi\n"), "\(kind): \(reply)")
        #expect(vm.wait(timeoutSeconds: 60) == 1, "\(kind): \(vm.output)")
        #expect(vm.output.contains("PASS virtioconsole"), "\(kind): \(vm.output)")
    }

    /// `-serial unix:PATH,server=on` waits for a client before the guest starts (QEMU's
    /// wait=on), so the client sees every byte; the same for QEMU.
    @Test func serialPortOnAUnixSocket() throws {
        let kernel = try GuestKernels.path("hello")
        func run(_ binary: String) throws -> (String, Int32) {
            let path = NetTest.socketPath("serial")
            defer { unlink(path) }
            let vm = try BackgroundProcess([binary, "-machine", "accel=kvm", "-nodefaults", "-display", "none",
                                            "-serial", "unix:\(path),server=on", "-device", "isa-debug-exit,iobase=0xf4,iosize=0x4",
                                            "-kernel", kernel])
            guard let c = NetTest.connect(path) else { return ("no connection: \(vm.output)", vm.wait(timeoutSeconds: 10)) }
            let text = NetTest.read(c, until: "PASS hello\n")
            return (text, vm.wait(timeoutSeconds: 60))
        }
        let (mine, status) = try run(try #require(Harness.vmmPath))
        #expect(status == 1 && mine.contains("PASS hello"), "\(mine)")
        guard let qemu = Harness.qemuPath else { return }
        let (theirs, qemuStatus) = try run(qemu)
        #expect(qemuStatus == status)
        #expect(mine.replacingOccurrences(of: "\r", with: "") == theirs.replacingOccurrences(of: "\r", with: ""))
    }

    /// `-chardev file,append=on` keeps what earlier runs wrote; `-serial chardev:ID` uses it.
    @Test func fileChardevAppends() throws {
        let kernel = try GuestKernels.path("hello")
        let vmm = try #require(Harness.vmmPath)
        let path = NetTest.socketPath("append")
        defer { unlink(path) }
        for _ in 0..<2 {
            let r = try ChildProcess.run([vmm, "-nodefaults", "-chardev", "file,id=f,path=\(path),append=on", "-serial", "chardev:f",
                                          "-device", "isa-debug-exit,iobase=0xf4,iosize=0x4", "-kernel", kernel])
            #expect(r.status == 1, "\(r.output)")
        }
        let text = String(decoding: try readWholeFile(path, maximumBytes: 1 << 20), as: UTF8.self)
        #expect(text.components(separatedBy: "PASS hello").count == 3, "\(text)")
    }

    /// The human monitor on a socket chardev (`-mon chardev=ID`, vmm's runner wiring it up),
    /// under vmm and QEMU: the banner and a prompt for the client, `info status`, and `quit`
    /// ending the process with status 0. QEMU: monitor_init_hmp() on a socket chardev.
    @Test func humanMonitorOnASocket() throws {
        let kernel = try GuestKernels.path("virtioconsole")
        var binaries = [try #require(Harness.vmmPath)]
        if let qemu = Harness.qemuPath { binaries.append(qemu) }
        for binary in binaries {
            let path = NetTest.socketPath("mon")
            defer { unlink(path) }
            let vm = try BackgroundProcess([binary, "-machine", "accel=kvm", "-nodefaults", "-display", "none",
                                            "-device", "isa-debug-exit,iobase=0xf4,iosize=0x4", "-device", "virtio-serial-pci",
                                            "-chardev", "null,id=c0", "-device", "virtconsole,chardev=c0",
                                            "-chardev", "socket,id=m,path=\(path),server=on,wait=off", "-mon", "chardev=m",
                                            "-kernel", kernel])
            let client = try #require(NetTest.connect(path), "\(binary): \(vm.output)")
            // vmm says 7.2.0; Debian's QEMU its own micro version.
            let banner = NetTest.read(client, until: "(qemu) ")
            #expect(banner.hasPrefix("QEMU 7.2.") && banner.contains(" monitor - type 'help' for more information"), "\(binary): \(banner)")
            client.write(Array("info status\n".utf8))
            #expect(NetTest.read(client, until: "(qemu) ").contains("VM status: running"), "\(binary)")
            client.write(Array("quit\n".utf8))
            #expect(vm.wait(timeoutSeconds: 30) == 0, "\(binary): \(vm.output)")
        }
    }
}
