import KVM
import Machine
import Memory
import VMMSys

// A VM with 64 KiB of RAM and one device register at I/O port 0x10 that the kernel answers:
// writes to it signal an eventfd (KVM_IOEVENTFD) instead of exiting to this program.
let machine = try MachineCore()
machine.systemRoot.addSubregion(try MemoryRegion.ram(name: "ram", size: 0x10000), at: 0)
let doorbell = MemoryRegion.io(name: "doorbell", size: 1, ops: MemoryRegionOps(
    read: { _, _ in 0 }, write: { _, value, _ in print("exit: the guest wrote \(value)") }))
machine.ioRoot.addSubregion(doorbell, at: 0x10)
let rings = try EventNotifier()
try doorbell.addEventfd(offset: 0, size: 1, matchData: false, data: 0, notifier: rings)
machine.attach()  // the KVM accelerator starts listening: RAM slot, ioeventfd
// The guest, in real mode at 0x1000: mov cx, 1000; again: out 0x10, al; loop again; hlt.
try machine.memory.guestMemory.write([0xB9, 0xE8, 0x03, 0xE6, 0x10, 0xE2, 0xFC, 0xF4], at: 0x1000)
let cpu = try machine.createVCPU(id: 0)
var segments = try cpu.vcpu.getSpecialRegisters()
segments.cs.base = 0; segments.cs.selector = 0
try cpu.vcpu.setSpecialRegisters(segments)
var registers = Registers(); registers.rip = 0x1000; registers.rflags = 0x2
try cpu.vcpu.setRegisters(registers)
let stop = cpu.run()  // on this thread, until the guest halts
print("\(stop): \(rings.testAndClear()) doorbells, \(cpu.counters.portIO) port I/O exits")
