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
    @Option(name: qemuName("drive"), help: "file=PATH,if=none|virtio,id=ID,format=raw[,readonly=on] (for virtio-blk-pci).")
    var drive: [String] = []

    /// The plain values, for `MachineConfiguration(qemu:)`.
    var arguments: QEMUArguments {
        QEMUArguments(
            kernel: kernel, append: append, initrd: initrd, memory: memory, smp: smp, device: device,
            serial: serial, machine: machine, accel: accel, enableKVM: enableKVM, cpu: cpu, name: name,
            nodefaults: nodefaults, nographic: nographic, display: display, vnc: vnc, noReboot: noReboot,
            global: global, monitor: monitor, drive: drive)
    }
}
