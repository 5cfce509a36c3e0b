import Testing
@testable import Machine

@Suite struct MachineConfigurationTests {
    @Test func testKernelCommandLineOfTheIssue() throws {
        let c = try MachineConfiguration(qemu: QEMUArguments(
            kernel: "k.elf", append: "a b", initrd: "m1 x,m2", memory: "256M", smp: "4",
            device: ["isa-debug-exit,iobase=0xf4,iosize=0x4", "pc-testdev", "pci-testdev"],
            serial: ["stdio"], machine: ["accel=kvm"], nodefaults: true, display: "none"))
        #expect(c.kernel == "k.elf" && c.append == "a b" && c.initrd == "m1 x,m2")
        #expect(c.memorySize == 256 << 20 && c.cpuCount == 4)
        #expect(c.devices.map(\.driver) == ["isa-serial", "isa-debug-exit", "pc-testdev", "pci-testdev"])
        #expect(c.devices[1].unsigned("iobase") == 0xf4 && c.devices[1].unsigned("iosize") == 4)
        #expect(c.chardevs == [ChardevSpec(id: "serial0", backend: .stdio)] && c.warnings.isEmpty)
    }

    @Test func defaultsFollowQEMU() throws {
        let c = try MachineConfiguration(qemu: QEMUArguments(kernel: "k"))
        #expect(c.memorySize == 128 << 20 && c.cpuCount == 1 && c.stdioSerialChardev == "serial0")
        #expect(c.devices.map(\.driver) == ["isa-serial"])
        let n = try MachineConfiguration(qemu: QEMUArguments(kernel: "k", nodefaults: true))
        #expect(n.chardevs.isEmpty && n.devices.isEmpty)
    }

    @Test func acceptedButIgnoredOptionsWarn() throws {
        let c = try MachineConfiguration(qemu: QEMUArguments(
            kernel: "k", machine: ["pc,kernel_irqchip=on"], accel: ["kvm,thread=single"], cpu: "qemu64",
            global: ["kvm-pit.lost_tick_policy=delay"]))
        #expect(c.warnings.count == 4)
        #expect(c.cpuModel == "qemu64")
    }

    @Test func unsupportedRequestsAreErrors() {
        let bad: [QEMUArguments] = [
            QEMUArguments(machine: ["q35"]), QEMUArguments(machine: ["accel=tcg"]), QEMUArguments(accel: ["tcg"]),
            QEMUArguments(display: "gtk"), QEMUArguments(vnc: ":0"), QEMUArguments(serial: ["stdio"], monitor: "stdio"),
            QEMUArguments(monitor: "tcp:1"),
        ]
        for a in bad {
            #expect(throws: ConfigurationError.self) { try MachineConfiguration(qemu: a) }
        }
    }

    @Test func monitorOnStdioTakesStdinFromTheDefaultSerial() throws {
        let c = try MachineConfiguration(qemu: QEMUArguments(kernel: "k", monitor: "stdio"))
        #expect(c.monitor == .stdio && c.chardevs.isEmpty && c.devices.isEmpty)
    }
}

/// Flags third-party test-kernel command lines carry that have nothing to configure here.
@Suite struct ThirdPartyFlagTests {
    @Test func networkOnlyNone() throws {
        #expect(try MachineConfiguration(qemu: QEMUArguments(nodefaults: true, net: ["none", "none"])).devices.isEmpty)
        #expect(throws: ConfigurationError.self) { try MachineConfiguration(qemu: QEMUArguments(net: ["user"])) }
    }

    @Test func rngObjectsLinkToVirtioRNG() throws {
        let ok = try MachineConfiguration(qemu: QEMUArguments(device: ["virtio-rng-pci,rng=r0"], object: ["rng-random,id=r0,filename=/dev/urandom"]))
        #expect(ok.devices.map(\.driver) == ["isa-serial", "virtio-rng-pci"] && ok.devices[1].string("rng") == "r0")
        #expect(throws: ConfigurationError.self) { try MachineConfiguration(qemu: QEMUArguments(device: ["virtio-rng-pci,rng=r1"])) }
        #expect(throws: ConfigurationError.self) { try MachineConfiguration(qemu: QEMUArguments(object: ["memory-backend-ram,id=m,size=1G"])) }
    }

    @Test func noACPIAndIgnoredFlags() throws {
        let c = try MachineConfiguration(qemu: QEMUArguments(vga: "std", noACPI: true, ignored: [("-rtc", "base=utc")]))
        #expect(c.acpi == false)
        #expect(c.warnings.contains("-rtc base=utc: ignored") && c.warnings.contains { $0.hasPrefix("-vga std") })
    }
}

/// `-global DRIVER.PROP=VALUE` as QEMU's qemu_global_option(): a default for that property of
/// every such device that does not set it (the device `-debugcon` creates too); both spellings;
/// anything else accepted with a warning.
@Suite struct GlobalPropertyTests {
    @Test func defaultsForDevicesThatDoNotSetTheProperty() throws {
        var a = QEMUArguments(
            device: ["isa-debugcon,chardev=x,iobase=0x80", "isa-debug-exit"], chardev: ["null,id=x"],
            global: ["isa-debugcon.iobase=0x402", "driver=isa-debug-exit,property=iobase,value=0x501"])
        a.firmware.debugcon = ["file:log"]
        let c = try MachineConfiguration(qemu: a)
        let debugcons = c.devices.filter { $0.driver == "isa-debugcon" }.map { $0.unsigned("iobase") }
        #expect(debugcons == [0x80, 0x402], "an explicit iobase wins; -debugcon's device takes the global")
        #expect(c.devices.first { $0.driver == "isa-debug-exit" }?.unsigned("iobase") == 0x501)
        #expect(c.warnings.isEmpty)
    }

    @Test func othersAreWarnedAbout() throws {
        let c = try MachineConfiguration(qemu: QEMUArguments(global: ["kvm-pit.lost_tick_policy=delay", "isa-debugcon.nosuch=1", "garbage"]))
        #expect(c.warnings == ["-global kvm-pit.lost_tick_policy=delay: ignored", "-global isa-debugcon.nosuch=1: ignored", "-global garbage: ignored"])
        #expect(GlobalProperty("a.b.c=d") == GlobalProperty(driver: "a", property: "b.c", value: "d"))
    }

    @Test func aBadValueIsTheDevicesError() {
        #expect(throws: ConfigurationError.self) {
            try MachineConfiguration(qemu: QEMUArguments(device: ["isa-debug-exit"], global: ["isa-debug-exit.iobase=zzz"]))
        }
    }
}
