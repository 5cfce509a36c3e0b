import Devices
import KVMAccel
import Logging
import Memory

/// The pc machine's PCI bus 0: the i440FX host bridge on 0xcf8/0xcfc, the devices from the
/// command line, and BARs assigned as SeaBIOS assigns them (MMIO down from the IOAPIC, I/O up
/// from 0xc000) with decoding enabled, since no firmware runs. QEMU: `i440fx_init()` + SeaBIOS.
public final class PCIBus: Sendable {
    public let host: PCIHost
    public let testDev: PCITestDev?
    public let assignments: [PCIBARAssignment]

    init(systemRoot: MemoryRegion, ioRoot: MemoryRegion, layout: PCMemoryLayout, accelerator: KVMAccelerator,
         pciTestDev: Bool, extraDevices: [PCIDevice] = []) throws {
        host = PCIHost(ioSpace: ioRoot, memorySpace: systemRoot)
        host.map(into: ioRoot)
        // The PIIX3 at 00:01 as on QEMU's pc, so -device pci-testdev lands at 00:02.0 as there.
        _ = try host.register(PIIX3.isaBridge(), slot: 1, function: 0)
        _ = try host.register(PIIX3.ide(), slot: 1, function: 1)
        _ = try host.register(PIIX3.powerManagement(), slot: 1, function: 3)
        if pciTestDev {
            // Zero-length ("fast MMIO") wildcard ioeventfds only when KVM offers them, as QEMU.
            let dev = try PCITestDev(fastMMIO: accelerator.anyLengthIoeventfds)
            _ = try host.register(dev)
            testDev = dev
        } else {
            testDev = nil
        }
        for d in extraDevices {
            _ = try host.register(d)
            d.configWrite(offset: PCIDevice.Register.interruptLine, value: 11, size: 1)
        }
        assignments = host.assignBARs(mmioTop: PCMemoryLayout.ioapicBase, ioBase: 0xc000)
    }
}
