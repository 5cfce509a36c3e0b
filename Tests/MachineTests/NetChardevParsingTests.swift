import Testing
import VMMSys
@testable import Machine

/// -netdev, -nic, -net, -chardev, -serial and -mon as QEMU spells them, and their one-line errors.
@Suite struct NetChardevParsingTests {
    @Test func netdevTap() throws {
        let (tap, warnings) = try QEMUValueParsing.netdev("tap,id=n0,ifname=tap0,script=no,downscript=no,queues=4,vnet_hdr=off")
        #expect(tap == NetdevSpec(id: "n0", ifname: "tap0", queues: 4, vnetHeader: .off) && warnings.isEmpty)
        let (fds, _) = try QEMUValueParsing.netdev("tap,id=n1,fds=5:6")
        #expect(fds.fds == [5, 6] && fds.queues == 2 && fds.ifname == nil)
        let (_, noScript) = try QEMUValueParsing.netdev("tap,id=n2,ifname=tap0")
        #expect(noScript.count == 1 && noScript[0].contains("/etc/qemu-ifup"))
        for (bad, message) in [("user,id=n0", "user-mode networking"), ("tap,id=n0,fd=3,ifname=x", "invalid with fd="),
                               ("tap,id=n0,queues=0", "positive number"), ("tap,id=n0,queues=32", "at most 31 queues"),
                               ("tap,id=n0,vnet_hdr=maybe", "expects 'on' or 'off'"), ("tap,id=n0,bogus=1", "Invalid parameter 'bogus'"),
                               ("tap,id=0n", "expects an identifier"), ("vde,id=n0", "only tap"), ("tap,id=n0,fd=x", "not a descriptor")] {
            let e = #expect(throws: ConfigurationError.self, "\(bad)") { try QEMUValueParsing.netdev(bad) }
            #expect(e?.message.contains(message) == true, "\(bad): \(e?.message ?? "")")
        }
    }

    @Test func nicAndDevices() throws {
        var a = QEMUArguments(device: ["virtio-net-pci,netdev=n0,mac=52:54:00:aa:bb:cc,mq=on"], netdev: ["tap,id=n0,ifname=t,script=no,downscript=no"])
        a.nic = ["tap,ifname=t2,script=no,downscript=no", "none"]
        let c = try MachineConfiguration(qemu: a)
        #expect(c.netdevs.map(\.id) == ["n0", "__org.qemu.nic0"])
        let nics = c.devices.filter { $0.driver == "virtio-net-pci" }
        #expect(nics.count == 2 && nics[0].string("netdev") == "__org.qemu.nic0" && nics[1].bool("mq"))
        #expect(c.warnings.contains { $0.contains("vmm adds virtio-net-pci") })
        let shared = #expect(throws: ConfigurationError.self) {
            try MachineConfiguration(qemu: QEMUArguments(device: ["virtio-net-pci,netdev=n0", "virtio-net-pci,netdev=n0"],
                                                         netdev: ["tap,id=n0,ifname=t,script=no,downscript=no"]))
        }
        #expect(shared?.message.contains("it's in use") == true)
        let peerless = try MachineConfiguration(qemu: QEMUArguments(device: ["virtio-net-pci"], netdev: ["tap,id=n9,ifname=t,script=no,downscript=no"]))
        #expect(peerless.warnings.contains("nic virtio-net-pci.0 has no peer") && peerless.warnings.contains("netdev n9 has no peer"))
        #expect(throws: ConfigurationError.self) { try MachineConfiguration.device("virtio-net-pci,mac=52:54:00:12:34") }
        #expect(throws: ConfigurationError.self) { try MachineConfiguration(qemu: QEMUArguments(net: ["nic"])) }
    }

    @Test func chardevsAndSerial() throws {
        #expect(try QEMUValueParsing.chardev("socket,id=s,path=/tmp/s,server=on,wait=off").backend
                == .socket(address: .unix("/tmp/s"), server: true, wait: false))
        #expect(try QEMUValueParsing.chardev("socket,id=s,path=/tmp/s,server=on").backend == .socket(address: .unix("/tmp/s"), server: true, wait: true))
        #expect(try QEMUValueParsing.chardev("socket,id=t,host=127.0.0.1,port=4444").backend
                == .socket(address: .tcp(host: "127.0.0.1", port: 4444), server: false, wait: false))
        #expect(try QEMUValueParsing.chardev("file,id=f,path=/tmp/f,append=on").backend == .appendFile("/tmp/f"))
        #expect(try QEMUValueParsing.chardev("pipe,id=p,path=/tmp/p").backend == .pipe("/tmp/p"))
        #expect(try QEMUValueParsing.chardev("pty,id=p").backend == .pty)
        for bad in ["socket,id=s", "socket,id=s,path=/a,host=h,port=1", "socket,id=s,host=example.com,port=1",
                    "socket,id=s,path=/a,wait=off", "socket,id=s,path=/a,telnet=on", "socket,id=s,host=127.0.0.1,port=70000",
                    "serial,id=x,path=/dev/ttyS0", "bogus,id=x", "stdio,id=x,mux=on", "pipe,id=p", "file,id=f"] {
            #expect(throws: ConfigurationError.self, "\(bad)") { try QEMUValueParsing.chardev(bad) }
        }
        #expect(try QEMUValueParsing.serialTarget("unix:/tmp/x,server=on,wait=off") == .backend(.socket(address: .unix("/tmp/x"), server: true, wait: false)))
        #expect(try QEMUValueParsing.serialTarget("tcp:127.0.0.1:5555,server=on") == .backend(.socket(address: .tcp(host: "127.0.0.1", port: 5555), server: true, wait: true)))
        #expect(try QEMUValueParsing.serialTarget("chardev:c0") == .chardev("c0"))
        #expect(try QEMUValueParsing.serialTarget("pipe:/tmp/p") == .backend(.pipe("/tmp/p")))
        let c = try MachineConfiguration(qemu: QEMUArguments(serial: ["chardev:c0"], chardev: ["null,id=c0"]))
        #expect(c.devices.first?.string("chardev") == "c0" && c.chardevs.count == 1)
        #expect(throws: ConfigurationError.self) { try MachineConfiguration(qemu: QEMUArguments(serial: ["chardev:nope"])) }
    }

    @Test func monitorsAndTheirChardevs() throws {
        let c = try MachineConfiguration(qemu: QEMUArguments(chardev: ["socket,id=q,path=/tmp/q,server=on,wait=off", "socket,id=h,path=/tmp/h,server=on,wait=off"],
                                                             mon: ["chardev=q,mode=control", "h"]))
        #expect(c.chardevMonitors == [ChardevMonitorSpec(chardev: "q", mode: .control), ChardevMonitorSpec(chardev: "h", mode: .readline)])
        #expect(c.controlMonitorSockets.map(\.address) == [.unix("/tmp/q")])
        for (a, message) in [(QEMUArguments(mon: ["chardev=x"]), "not found"),
                             (QEMUArguments(chardev: ["stdio,id=s"], mon: ["chardev=s,mode=control"]), "needs a listening socket"),
                             (QEMUArguments(chardev: ["null,id=n"], mon: ["chardev=n", "chardev=n"]), "in use"),
                             (QEMUArguments(chardev: ["null,id=n"], mon: ["chardev=n,mode=qmp"]), "does not accept value"),
                             // QEMU 7.2's own words (monitor_init()).
                             (QEMUArguments(chardev: ["null,id=n"], mon: ["chardev=n,pretty=on"]), "-mon chardev=n,pretty=on: 'pretty' is not compatible with HMP monitors"),
                             (QEMUArguments(chardev: ["socket,id=q,path=/tmp/q,server=on,wait=off"], mon: ["chardev=q,mode=control,pretty=on"]),
                              "pretty-printed QMP is not supported")] {
            let e = #expect(throws: ConfigurationError.self) { try MachineConfiguration(qemu: a) }
            #expect(e?.message.contains(message) == true, "\(e?.message ?? "")")
        }
        let ports = #expect(throws: ConfigurationError.self) {
            try MachineConfiguration(qemu: QEMUArguments(device: ["virtconsole"]))
        }
        #expect(ports?.message.contains("No 'virtio-serial-bus' bus found for device 'virtconsole'") == true)
        let inUse = #expect(throws: ConfigurationError.self) {
            try MachineConfiguration(qemu: QEMUArguments(device: ["virtio-serial-pci", "virtconsole,chardev=c", "virtserialport,chardev=c"], chardev: ["null,id=c"]))
        }
        #expect(inUse?.message.contains("can't take value 'c', it's in use") == true)
    }

    /// QEMU: qemu_macaddr_default_if_unset() — 52:54:00:12:34:56 + the first free slot; a
    /// given address in that range takes its slot.
    @Test func defaultMACsFollowQEMU() {
        var used = Set<UInt8>()
        func mac(_ text: String?) -> String { DeviceContext.allocateMAC(text, used: &used).description }
        #expect(mac(nil) == "52:54:00:12:34:56")
        #expect(mac("52:54:00:12:34:57") == "52:54:00:12:34:57")
        #expect(mac(nil) == "52:54:00:12:34:58")
        #expect(mac("02:00:00:00:00:01") == "02:00:00:00:00:01")
    }
}
