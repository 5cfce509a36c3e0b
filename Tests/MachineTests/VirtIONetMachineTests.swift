import Devices
import Foundation
import Memory
import ProcessSupport
import Synchronization
import Testing
import TestSupport
import VirtIO
import VMMSys
@testable import Machine

/// virtio-net over a tap in a private network namespace, the host's own network stack on the
/// other side: the virtionet kernel ARPs, pings and UDP-echoes through it, under vmm and under
/// QEMU with the same command line (QEMU with vhost off: there is no /dev/vhost-net here), and
/// both print the same lines. Nothing leaves the namespace.
@Suite(.enabled(if: Harness.kvmAvailable, "requires read/write access to /dev/kvm"),
       .enabled(if: GuestKernels.toolchainAvailable, "needs gcc, as and ld to build the test kernels"),
       .enabled(if: NetTest.available, "needs root, /dev/net/tun and iproute2 for a private network namespace with a tap"))
struct VirtIONetMachineTests {
    struct Variant: CustomStringConvertible, Sendable {
        var append: String
        var netdev = "tap,ifname=tap0,script=no,downscript=no"
        var device = "virtio-net-pci,netdev=n0"
        var echo = "10.0.2.2"
        var description: String { "\(append) | \(netdev) | \(device)" }
    }

    static let variants: [Variant] = [
        Variant(append: "pings=4 udp=16 large=2"),
        Variant(append: "mrg=0 large=2"),
        Variant(append: "mrg=0 csum=0 evidx=0 large=1"),
        Variant(append: "large=1", netdev: "tap,ifname=tap0,script=no,downscript=no,vnet_hdr=off"),
        Variant(append: "mq=2 ip=10.0.3.15 host=10.0.3.2 udp=24", netdev: "tap,ifname=tapm,script=no,downscript=no,queues=2",
                device: "virtio-net-pci,netdev=n0,mq=on", echo: "10.0.3.2"),
        Variant(append: "hostile", device: "virtio-net-pci,netdev=n0,mq=on"),
    ]

    /// The same guest, the same lines: features offered, MAC, control acks, ARP, ping, UDP
    /// echo, large frames (merged buffers with MRG_RXBUF, 12 KiB chains without), partial
    /// checksums, two queue pairs, the hostile verdicts.
    @Test(arguments: variants)
    func sameResultsAsQEMU(_ variant: Variant) throws {
        let kernel = try GuestKernels.path("virtionet")
        let vmm = try #require(Harness.vmmPath)
        let qemu = Harness.qemuPath
        let (mine, theirs) = try NetworkNamespace.run { () throws -> (ChildRun, ChildRun?) in
            try NetTest.addTaps()
            let echo = try UDPEchoServer(host: variant.echo, port: 7777)
            defer { echo.stop() }
            let flags = NetTest.flags(kernel: kernel, netdev: variant.netdev, device: variant.device, append: variant.append)
            let v = try ChildProcess.run([vmm] + flags, timeoutSeconds: 120)
            let q = try qemu.map { try ChildProcess.run([$0] + flags.map { $0.hasPrefix("tap,") ? $0 + ",vhost=off" : $0 }, timeoutSeconds: 120) }
            return (v, q)
        }
        #expect(mine.status == 1 && mine.output.contains("PASS virtionet"), "\(mine.output)")
        guard let theirs else { return }
        #expect(theirs.status == mine.status)
        #expect(NetTest.guestLines(mine.output) == NetTest.guestLines(theirs.output), "vmm:\n\(mine.output)\nqemu:\n\(theirs.output)")
    }

    /// `-nic tap,...` builds the netdev and the NIC in one option (virtio-net-pci: QEMU's pc
    /// default, an e1000, does not exist here) and the guest runs as with -netdev/-device.
    @Test func nicOption() throws {
        let kernel = try GuestKernels.path("virtionet")
        let vmm = try #require(Harness.vmmPath)
        let run = try NetworkNamespace.run { () throws -> ChildRun in
            try NetTest.addTaps()
            let echo = try UDPEchoServer(host: "10.0.2.2", port: 7777)
            defer { echo.stop() }
            return try ChildProcess.run([vmm, "-machine", "accel=kvm", "-nodefaults", "-display", "none", "-serial", "stdio",
                                         "-device", "isa-debug-exit,iobase=0xf4,iosize=0x4",
                                         "-nic", "tap,ifname=tap0,script=no,downscript=no,model=virtio-net-pci,mac=52:54:00:12:34:99",
                                         "-kernel", kernel, "-append", "large=0"], timeoutSeconds: 120)
        }
        #expect(run.status == 1 && run.output.contains("PASS virtionet"), "\(run.output)")
        #expect(run.output.contains("mac 52:54:00:12:34:99 status 1"))
    }

    /// `fd=`: a tap the caller opened (here: this test, descriptor inherited by vmm).
    @Test func inheritedTapDescriptor() throws {
        let kernel = try GuestKernels.path("virtionet")
        let vmm = try #require(Harness.vmmPath)
        let run = try NetworkNamespace.run { () throws -> ChildRun in
            try NetTest.addTaps()
            let tap = try TapDevice.open(name: "tap0")
            let inheritable = dup(tap.queues[0].fileDescriptor.rawValue)          // dup clears FD_CLOEXEC
            defer { close(inheritable) }
            let echo = try UDPEchoServer(host: "10.0.2.2", port: 7777)
            defer { echo.stop() }
            return try ChildProcess.run([vmm] + NetTest.flags(kernel: kernel, netdev: "tap,fd=\(inheritable)", append: "large=1"), timeoutSeconds: 120)
        }
        #expect(run.status == 1 && run.output.contains("PASS virtionet"), "\(run.output)")
    }

    /// The data path exits to vmm not once: between the guest's "phase-start" and "phase-end"
    /// datagrams, 100 pings and 100 UDP round trips add no port-I/O or MMIO exit on the vCPU
    /// and no doorbell reaches the notify region's callback (every kick went through the
    /// ioeventfd, every completion through an irqfd).
    @Test func dataPathMakesNoExits() throws {
        let kernel = try GuestKernels.path("virtionet")
        let outcome = try NetworkNamespace.run { () throws -> (status: Int32, exits: [UInt64], frames: UInt64, text: String, notifyWrites: UInt64?) in
            try NetTest.addTaps()
            let machineBox = Mutex<PCMachine?>(nil)
            let snapshots = Mutex<[UInt64]>([])
            let echo = try UDPEchoServer(host: "10.0.2.2", port: 7777, markers: ["phase-start", "phase-end"]) { _, _ in
                guard let m = machineBox.withLock({ $0 }) else { return }
                let c = m.runners[0].counters
                let net = m.devices.first(VirtIOPCI.self)?.device as? VirtIONet
                snapshots.withLock { $0 += [c.portIO + c.mmio, (net?.counters.received ?? 0) + (net?.counters.transmitted ?? 0)] }
            }
            defer { echo.stop() }
            var c = try MachineConfiguration(qemu: QEMUArguments(
                device: ["isa-debug-exit,iobase=0xf4,iosize=0x4", "virtio-net-pci,netdev=n0"], nodefaults: true,
                netdev: ["tap,id=n0,ifname=tap0,script=no,downscript=no"]))
            c.kernel = kernel
            c.append = "phases pings=100 udp=100 large=0"
            c.devices.insert(try MachineConfiguration.device("isa-serial"), at: 0)
            let serial = CapturingSerialBackend()
            let machine = try PCMachine(c, serial: serial, memorySystem: MemorySystem())
            machineBox.withLock { $0 = machine }
            let status = machine.run()
            let dev = machine.devices.first(VirtIOPCI.self)
            let notify = dev?.modernRegion.subregions.first { $0.name == "virtio-pci-notify" }
            return (status, snapshots.withLock { $0 }, 0, serial.text, notify?.dispatchCounts.writes)
        }
        #expect(outcome.status == 1 && outcome.text.contains("PASS virtionet"), "\(outcome.text)")
        #expect(outcome.text.contains("ping 10.0.2.2: 100/100 replies") && outcome.text.contains("udp echo: 100/100 round trips"))
        let s = outcome.exits
        try #require(s.count == 4, "markers seen: \(s)")
        let exits = s[2] - s[0], frames = s[3] - s[1]
        #expect(frames >= 400, "\(frames) frames between the markers")
        #expect(exits == 0, "\(exits) userspace exits for \(frames) frames")
        #expect(outcome.notifyWrites == 0, "kicks that reached the notify region's callback")
    }

    /// Nothing is allocated per packet: vmm runs with a malloc counter preloaded, and between
    /// the guest's "phase-start" and "phase-end" datagrams (100 pings and 100 UDP round trips,
    /// over 400 frames through the tap) the count does not move.
    @Test func dataPathAllocatesNothing() throws {
        let kernel = try GuestKernels.path("virtionet")
        let vmm = try #require(Harness.vmmPath)
        let library = try MallocCounter.library.get()
        let countFile = NetTest.socketPath("malloc")
        defer { unlink(countFile) }
        let counts = try NetworkNamespace.run { () throws -> ([UInt64], String, Int32) in
            try NetTest.addTaps()
            let pid = Mutex<Int32>(0)
            let samples = Mutex<[UInt64]>([])
            let echo = try UDPEchoServer(host: "10.0.2.2", port: 7777, markers: ["phase-start", "phase-end"]) { _, _ in
                let n = samples.withLock { $0.count } + 1
                if let c = MallocCounter.count(pid: pid.withLock { $0 }, file: countFile, answers: n) { samples.withLock { $0.append(c) } }
            }
            defer { echo.stop() }
            let vm = try BackgroundProcess(["env", "LD_PRELOAD=\(library)", "MALLOC_COUNT_FILE=\(countFile)", vmm]
                + NetTest.flags(kernel: kernel, append: "phases pings=100 udp=100 large=0"))
            pid.withLock { $0 = vm.pid }
            let status = vm.wait(timeoutSeconds: 120)
            return (samples.withLock { $0 }, vm.output, status)
        }
        #expect(counts.2 == 1 && counts.1.contains("PASS virtionet"), "\(counts.1)")
        try #require(counts.0.count == 2, "counts: \(counts.0), file: \((try? String(contentsOfFile: countFile, encoding: .utf8)) ?? "none")")
        #expect(counts.0[1] == counts.0[0], "\(counts.0[1] &- counts.0[0]) allocations during 200 round trips")
    }

    /// One clear line and status 1 for what cannot work: user-mode networking, a script, a
    /// name the kernel refuses, an interface that is not a tap, a tap another process holds,
    /// no permission, too many queues, a NIC model that does not exist, a missing netdev.
    @Test func badNetworkRequests() throws {
        let kernel = try GuestKernels.path("virtionet")
        let vmm = try #require(Harness.vmmPath)
        @Sendable func run(_ netdev: String, device: String = "virtio-net-pci,netdev=n0", prefix: [String] = []) throws -> ChildRun {
            try ChildProcess.run(prefix + [vmm, "-nodefaults", "-netdev", netdev, "-device", device, "-kernel", kernel], timeoutSeconds: 60)
        }
        let cases: [(String, String)] = [
            ("user,id=n0", "user-mode networking (slirp) is not supported here; use -netdev tap"),
            ("tap,id=n0,ifname=tap0,script=/etc/qemu-ifup,downscript=no", "vmm never runs scripts"),
            ("tap,id=n0,ifname=averyveryverylongname", "is too long"),
            ("tap,id=n0,ifname=tap0,queues=40", "at most 31 queues"),
            ("tap,id=n0,ifname=tap0,vhost=on", "vhost-net is not supported"),
            ("bridge,id=n0", "only tap"),
            ("tap,ifname=tap0", "Parameter 'id' is missing"),
        ]
        for (netdev, message) in cases {
            let r = try run(netdev)
            #expect(r.status == 1 && r.output.hasPrefix("vmm: ") && r.output.contains(message), "\(netdev): \(r.output)")
            #expect(r.output.split(separator: "\n").count == 1, "\(netdev): one line: \(r.output)")
        }
        let missing = try run("tap,id=n1,ifname=tap0,script=no,downscript=no")
        #expect(missing.status == 1 && missing.output.contains("Property 'virtio-net-pci.netdev' can't find value 'n0'"), "\(missing.output)")
        let model = try ChildProcess.run([vmm, "-nic", "tap,ifname=tap0,model=e1000", "-kernel", kernel])
        #expect(model.status == 1 && model.output.contains("model 'e1000' is not available here"), "\(model.output)")
        let legacy = try ChildProcess.run([vmm, "-net", "nic", "-kernel", kernel])
        #expect(legacy.status == 1 && legacy.output.contains("legacy -net form is not supported"), "\(legacy.output)")

        let outcomes = try NetworkNamespace.run { () throws -> [ChildRun] in
            try NetTest.addTaps()
            let notTap = try run("tap,id=n0,ifname=lo,script=no,downscript=no")
            var unprivileged: [ChildRun] = []
            if ChildProcess.which("setpriv") != nil {
                // Root without CAP_NET_ADMIN: /dev/kvm and /dev/net/tun still open, the tap does not.
                let drop = ["setpriv", "--bounding-set=-net_admin", "--inh-caps=-net_admin"]
                unprivileged.append(try run("tap,id=n0,ifname=nosuchtap,script=no,downscript=no", prefix: drop))
                try NetworkNamespace.addTap("tapo", address: "10.0.4.2/24", user: 12345)   // owned by another user
                unprivileged.append(try run("tap,id=n0,ifname=tapo,script=no,downscript=no", prefix: drop))
            }
            let held = try TapDevice.open(name: "tap0")                   // this process holds the single-queue tap
            let busy = try run("tap,id=n0,ifname=tap0,script=no,downscript=no")
            _ = held
            return [notTap, busy] + unprivileged
        }
        #expect(outcomes[0].status == 1 && outcomes[0].output.contains("'lo' exists but is not a single-queue tap device"), "\(outcomes[0].output)")
        #expect(outcomes[1].status == 1 && outcomes[1].output.contains("could not configure /dev/net/tun (tap0): Device or resource busy"), "\(outcomes[1].output)")
        if outcomes.count > 3 {
            let unknown = outcomes[2], notMine = outcomes[3]
            #expect(unknown.status == 1 && unknown.output.contains("could not configure /dev/net/tun (nosuchtap): Operation not permitted: tap 'nosuchtap' does not exist, and creating it needs CAP_NET_ADMIN"), "\(unknown.output)")
            #expect(notMine.status == 1 && notMine.output.contains("tap 'tapo' exists but belongs to another user or group"), "\(notMine.output)")
            for r in [unknown, notMine] { #expect(r.output.split(separator: "\n").count == 1, "\(r.output)") }
        }
    }
}
