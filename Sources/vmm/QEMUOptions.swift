import ArgumentParser
import Machine

/// QEMU's option names, single- or double-dash, as `qemu-system-x86_64` accepts them.
private func qemuName(_ name: String) -> NameSpecification {
    [.customLong(name, withSingleDash: true), .customLong(name)]
}

/// The subset of `qemu-system-x86_64`'s command line that small test kernels use.
struct QEMUOptions: ParsableArguments {
    @Option(name: qemuName("kernel"), help: "Kernel image: Multiboot (ELF32/ELF64/a.out kludge) or a Linux bzImage.")
    var kernel: String?
    @Option(name: qemuName("append"), parsing: .unconditional, help: "Kernel command line.")
    var append: String?
    @Option(name: qemuName("initrd"), help: "Multiboot modules (\"file args,file2\"), or a Linux initrd file.")
    var initrd: String?
    @Option(name: [.customShort("m")], help: "RAM size (256, 256M, 2G).")
    var memory: String?
    @Option(name: qemuName("smp"), help: "CPUs: n[,maxcpus=m,sockets=,cores=,threads=].")
    var smp: String?
    @Option(name: qemuName("device"), help: "isa-debug-exit,iobase=,iosize= | pc-testdev | pci-testdev | help.")
    var device: [String] = []
    @Option(name: qemuName("serial"), help: "stdio | file:PATH | none.")
    var serial: String?
    @Option(name: [.customLong("machine", withSingleDash: true), .customLong("machine"), .customShort("M")], help: "[type=]pc[,accel=kvm].")
    var machine: [String] = []
    @Option(name: qemuName("accel"), help: "kvm.")
    var accel: [String] = []
    @Flag(name: qemuName("enable-kvm"), help: "Same as -accel kvm.")
    var enableKVM = false
    @Option(name: qemuName("cpu"), help: "host | max | model (the host's CPUID in every case).")
    var cpu: String?
    @Option(name: qemuName("name"), help: "Guest name.")
    var name: String?
    @Flag(name: qemuName("nodefaults"), help: "No default devices.")
    var nodefaults = false
    @Flag(name: qemuName("nographic"), help: "No display (serial on stdio unless -serial says otherwise).")
    var nographic = false
    @Option(name: qemuName("display"), help: "none.")
    var display: String?
    @Option(name: qemuName("vnc"), help: "none.")
    var vnc: String?
    @Flag(name: qemuName("no-reboot"), help: "Exit instead of rebooting.")
    var noReboot = false
    @Option(name: qemuName("global"), help: "driver.prop=value (accepted; ignored with a warning).")
    var global: [String] = []
    @Option(name: qemuName("monitor"), help: "stdio | none.")
    var monitor: String?
    @Option(name: qemuName("net"), help: "none (no network devices).")
    var net: [String] = []
    @Option(name: qemuName("nic"), help: "none (no network devices).")
    var nic: [String] = []
    @Option(name: qemuName("vga"), help: "none (any other: no VGA here, warned).")
    var vga: String?
    @Flag(name: qemuName("no-acpi"), help: "No ACPI tables.")
    var noACPI = false
    @Flag(name: qemuName("no-hpet"), help: "No HPET (there is none: accepted silently).")
    var noHPET = false
    @Option(name: qemuName("object"), help: "rng-random,id=ID[,filename=] | rng-builtin,id=ID (for virtio-rng-pci,rng=ID).")
    var object: [String] = []
    @Option(name: qemuName("rtc"), help: "Accepted; ignored with a warning (the RTC follows the host clock in UTC).")
    var rtc: String?
    @Option(name: qemuName("boot"), help: "Accepted; ignored with a warning (no firmware boots here).")
    var boot: String?
    @Flag(name: qemuName("no-shutdown"), help: "Accepted; ignored with a warning.")
    var noShutdown = false
    @Option(name: qemuName("overcommit"), help: "Accepted; ignored with a warning.")
    var overcommit: String?
    @Option(name: qemuName("msg"), help: "Accepted; ignored with a warning.")
    var msg: String?
    @Option(name: .customShort("d"), help: "QEMU log items: accepted, ignored with a warning (use VMM_LOG).")
    var logItems: String?
    @Option(name: .customShort("D"), help: "QEMU log file: accepted, ignored with a warning.")
    var logFile: String?
    @Option(name: qemuName("drive"), help: "file=PATH,if=none|virtio,id=ID,format=raw[,readonly=on] (for virtio-blk-pci).")
    var drive: [String] = []

    /// The plain values, for `MachineConfiguration(qemu:)`.
    var arguments: QEMUArguments {
        QEMUArguments(
            kernel: kernel, append: append, initrd: initrd, memory: memory, smp: smp, device: device,
            serial: serial, machine: machine, accel: accel, enableKVM: enableKVM, cpu: cpu, name: name,
            nodefaults: nodefaults, nographic: nographic, display: display, vnc: vnc, noReboot: noReboot,
            global: global, monitor: monitor, drive: drive, net: net + nic, vga: vga, noACPI: noACPI,
            object: object,
            ignored: [("-rtc", rtc), ("-boot", boot),
                      ("-no-shutdown", noShutdown ? "" : nil), ("-d", logItems), ("-D", logFile),
                      ("-overcommit", overcommit), ("-msg", msg)]
                .compactMap { flag, value in value.map { (flag, $0) } })
    }
}
