import Devices
import KVMAccel
import Memory

/// The machine's PCI bus (placeholder until the PCI devices land).
public final class PCIBus: Sendable {
    init(systemRoot: MemoryRegion, ioRoot: MemoryRegion, layout: PCMemoryLayout, accelerator: KVMAccelerator, pciTestDev: Bool) throws {}
}
