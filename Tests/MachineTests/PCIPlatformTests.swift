import Devices
import Foundation
import KVMAccel
import Memory
import Testing
import VMMSys
@testable import Machine

/// The pc machine's PCI platform as QEMU's i440FX builds it: PCI memory below RAM, BARs that a
/// guest moves anywhere, device DMA that never writes ROM, and the memory tree's shape.
@Suite(.enabled(if: Harness.kvmAvailable, "requires read/write access to /dev/kvm"),
       .enabled(if: GuestKernels.toolchainAvailable, "needs gcc, as and ld to build the test kernels"))
struct PCIPlatformTests {
    static func machine(virtio: Bool = false) throws -> PCMachine {
        var c = MachineConfiguration()
        c.kernel = try GuestKernels.path("hello")
        c.devices = try (["isa-debug-exit,iobase=0xf4,iosize=0x4", "pc-testdev", "pci-testdev"] + (virtio ? ["virtio-rng-pci"] : []))
            .map(MachineConfiguration.device)
        return try PCMachine(c, memorySystem: MemorySystem())
    }

    /// Whether virtio-pci's BAR 4 is 64-bit prefetchable memory yet, as on QEMU (until it is,
    /// `Guests/tests/pcibar.c bar64=1` cannot pass under vmm).
    static let virtioBAR4Is64Bit: Bool = {
        guard Harness.kvmAvailable, GuestKernels.toolchainAvailable, let m = try? machine(virtio: true) else { return false }
        let virtio = m.devices.pci.host.functions.first { $0.device.configRead(offset: 0, size: 4) == 0x1005_1af4 }
        return virtio?.device.bars[4]?.kind == .memory64Prefetchable
    }()

    func configWrite(_ m: PCMachine, slot: Int, _ reg: Int, _ value: UInt64, size: Int = 4) {
        m.io.write(0xcf8, value: 0x8000_0000 | UInt64(slot) << 11 | UInt64(reg & 0xfc), size: 4)
        m.io.write(0xcfc + UInt64(reg & 3), value: value, size: size)
    }

    func configRead(_ m: PCMachine, slot: Int, _ reg: Int) -> UInt64 {
        m.io.write(0xcf8, value: 0x8000_0000 | UInt64(slot) << 11 | UInt64(reg & 0xfc), size: 4)
        return m.io.read(0xcfc, size: 4).value
    }

    /// A memory BAR moved over RAM does not punch a hole in it: RAM still reads and writes
    /// there, KVM's memory slots do not change at all, and the BAR decodes again once back in
    /// the PCI hole. QEMU: i440fx_init() → pc_pci_as_mapping_init() (PCI memory at priority -1).
    @Test func memoryBARMovedOverRAMLeavesRAMAlone() throws {
        let m = try Self.machine()
        let dev = try #require(m.devices.first(PCITestDev.self))
        let bar0 = try #require(dev.barAddress(0))
        #expect(bar0 == 0xfebf_f000)                                   // QEMU 7.2: the same
        let slots = m.accelerator.memorySlots
        try m.memory.guestMemory.store(UInt32(0x1122_3344), at: 0x40_0000)
        configWrite(m, slot: 2, 0x10, 0x40_0000)
        #expect(dev.barAddress(0) == 0x40_0000)                        // mapped there in PCI memory...
        #expect(m.memory.read(0x40_0000, size: 4) == (0x1122_3344, .ok))   // ...but RAM is what the CPU sees
        m.memory.write(0x40_0000, value: 0xcafe_f00d, size: 4)
        #expect(try m.memory.guestMemory.load(UInt32.self, at: 0x40_0000) == 0xcafe_f00d)
        #expect(dev.currentTest == nil)                                 // the write did not reach the device
        #expect(m.accelerator.memorySlots == slots)
        let view = m.memory.currentMap
        #expect(view.lookup(0x40_0000).map { view.ranges[$0].region.name } == "pc.ram")
        configWrite(m, slot: 2, 0x10, bar0)
        m.memory.write(bar0, value: 0, size: 1)                         // start mmio-no-eventfd
        #expect(dev.currentTest == 0)
        #expect(m.accelerator.memorySlots == slots)
    }

    /// An I/O BAR moved over the configuration ports stays unmapped (a deliberate difference:
    /// QEMU 7.2 loses configuration space for good, see `ioBAROverConfigPortsUnderQEMU`).
    @Test func ioBARMovedOverConfigPortsKeepsConfigSpace() throws {
        let m = try Self.machine()
        let dev = try #require(m.devices.first(PCITestDev.self))
        let bar1 = configRead(m, slot: 2, 0x14)
        configWrite(m, slot: 2, 0x14, 0xc00)
        #expect(dev.barAddress(1) == nil)
        #expect(configRead(m, slot: 0, 0) == 0x1237_8086)
        #expect(m.io.currentMap.ranges.contains { $0.start == 0xcf8 && $0.region.name == "pci-conf-idx" })
        configWrite(m, slot: 2, 0x14, bar1)
        #expect(dev.barAddress(1) == bar1 & ~3)
    }

    /// fw_cfg's DMA (a device) aimed at the BIOS ROM: the transfer reports an error in its
    /// control word and the ROM keeps its bytes; the same transfer into RAM works; loaders
    /// still fill ROM. QEMU: dma_memory_write() → MEMTX_DECODE_ERROR → FW_CFG_DMA_CTL_ERROR.
    @Test func deviceDMAToBIOSROMFailsAndLeavesItUnchanged() throws {
        let m = try Self.machine()
        let loader = m.memory.guestMemory
        let descriptor: UInt64 = 0x5_0000
        func dma(into address: UInt64) throws -> [UInt8] {
            var d: [UInt8] = [0, 0, 0, 0x0a, 0, 0, 0, 4]                 // select key 0 + read; 4 bytes
            d += (0..<8).map { UInt8(truncatingIfNeeded: address >> (56 - 8 * UInt64($0))) }
            try loader.write(d, at: descriptor)
            m.io.write(0x514, value: UInt64(UInt32(descriptor >> 32).byteSwapped), size: 4)
            m.io.write(0x518, value: UInt64(UInt32(truncatingIfNeeded: descriptor).byteSwapped), size: 4)
            return try loader.read(at: descriptor, count: 4)            // the control word, big-endian
        }
        for rom: UInt64 in [0xf_fff0, 0xe_0000, 0xffff_fff0] {         // isa-bios (both PAM windows) and pc.bios
            try loader.write([1, 2, 3, 4], at: rom)                     // a loader fills ROM
            #expect(try loader.read(at: rom, count: 4) == [1, 2, 3, 4])
            #expect(try dma(into: rom) == [0, 0, 0, 1], "DMA into ROM at \(String(rom, radix: 16))")
            #expect(try loader.read(at: rom, count: 4) == [1, 2, 3, 4])
            #expect(throws: GuestMemoryError.readOnly(address: rom)) { try m.memory.dmaMemory.write([9], at: rom) }
        }
        #expect(try dma(into: 0x5_0100) == [0, 0, 0, 0])
        #expect(try loader.read(at: 0x5_0100, count: 4) == Array("QEMU".utf8))
    }

    /// `info mtree`'s system memory has QEMU's shape: compared line for line with QEMU 7.2's
    /// own `info mtree` (under -S) for the lines both machines have — RAM, the "pci" container
    /// at priority -1 holding the BIOS and pc-testdev's iomem, and the PAM aliases over the
    /// BIOS area. (QEMU also has pc.rom, SMRAM and the 0xc0000-0xdffff PAM windows; ours not.)
    @Test(.enabled(if: Harness.qemuPath != nil, "qemu-system-x86_64 not installed (apt-get install qemu-system-x86)"))
    func memoryTreeMatchesQEMU() throws {
        let m = try Self.machine()
        let ours = MemoryTreeDump.tree(m.memorySystem)
        let input = FileManager.default.temporaryDirectory.appendingPathComponent("mtree-\(getpid()).txt")
        try "info mtree\nquit\n".write(to: input, atomically: true, encoding: .utf8)
        defer { try? FileManager.default.removeItem(at: input) }
        let q = try #require(try Harness.qemu(["-machine", "accel=kvm", "-nodefaults", "-display", "none", "-serial", "none",
                                              "-device", "pc-testdev", "-device", "pci-testdev", "-S", "-monitor", "stdio",
                                              "-kernel", try GuestKernels.path("hello")], stdinPath: input.path))
        func systemLines(_ text: String) -> [String] {
            // QEMU's monitor ends lines with "\r\n" (one Character in Swift, so no "\n" split).
            let lines = text.replacingOccurrences(of: "\r\n", with: "\n").split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
            guard let start = lines.firstIndex(of: "address-space: memory") else { return [] }
            let block = lines[(start + 1)...].prefix { !$0.isEmpty }
            return block.filter { l in
                l.hasSuffix("): pci") || ["ram-below-4g", "isa-bios", "): pc.bios", "pc-testdev-iomem",
                 "pam-pci @pci 00000000000e", "pam-pci @pci 00000000000f"].contains { l.contains($0) }
            }
        }
        let want = systemLines(q.output)
        #expect(want.count == 10, "\(q.output)")
        #expect(systemLines(ours) == want, "ours:\n\(ours)")
    }

    /// `info pci` prints BARs as QEMU's hmp_info_pci() does, unmapped ones included (these
    /// strings are QEMU 7.2's, from `info pci` with and without firmware having run).
    @Test func infoPCIBARsReadAsQEMUPrintsThem() throws {
        #expect(PCIBus.describe(.io, at: nil, size: 16) == "I/O at 0xffffffffffffffff [0x000e]")
        #expect(PCIBus.describe(.memory32, at: nil, size: 0x1000) == "32 bit memory at 0xffffffffffffffff [0x00000ffe]")
        #expect(PCIBus.describe(.memory64Prefetchable, at: nil, size: 0x4000)
                == "64 bit prefetchable memory at 0xffffffffffffffff [0x00003ffe]")
        #expect(PCIBus.describe(.memory64Prefetchable, at: 0xfebf_8000, size: 0x4000)
                == "64 bit prefetchable memory at 0xfebf8000 [0xfebfbfff]")
        #expect(PCIBus.describe(.io, at: 0xc120, size: 16) == "I/O at 0xc120 [0xc12f]")
        let m = try Self.machine()
        #expect(m.devices.pci.info().contains("      BAR0: 32 bit memory at 0xfebff000 [0xfebfffff].\n      BAR1: I/O at 0xc000 [0xc0ff].\n"))
    }

    // MARK: The pcibar guest kernel, under vmm and QEMU with the same command line

    /// BARs moved over RAM, to a wrapping address, sized, and moved within I/O space: the
    /// serial output is QEMU's line for line.
    @Test func pcibarKernelMatchesQEMU() throws {
        let flags = Harness.qemuFlags(kernel: try GuestKernels.path("pcibar"))
        let v = try Harness.vmm(flags)
        let vl = Harness.serialLines(v.output)
        #expect(vl.contains("PASS pcibar") && v.status == 1, "\(v.output)")
        #expect(vl.contains("RAM under BAR0: 11223344 55667788"))
        guard let q = try Harness.qemuOrKnownIssue(flags) else { return }
        #expect(q.status == v.status)
        #expect(vl == Harness.serialLines(q.output), "vmm:\n\(v.output)\nqemu:\n\(q.output)")
    }

    /// `cf8=1`: vmm keeps configuration space when an I/O BAR is moved over 0xcf8-0xcff. The
    /// QEMU run documents why this is a deliberate difference: there the id is lost.
    @Test func ioBAROverConfigPortsUnderVMMAndQEMU() throws {
        let flags = Harness.qemuFlags(kernel: try GuestKernels.path("pcibar"), append: "cf8=1")
        let v = try Harness.vmm(flags)
        let vl = Harness.serialLines(v.output)
        #expect(vl.contains("BAR1 over 0xc00-0xcff: host bridge id 12378086"), "\(v.output)")
        #expect(vl.contains("PASS pcibar") && v.status == 1)
        guard let q = try Harness.qemuOrKnownIssue(flags) else { return }
        let ql = Harness.serialLines(q.output)
        #expect(ql.contains("FAIL pcibar: configuration space lost"), "QEMU kept configuration space now? \(q.output)")
        #expect(q.status == 3)
    }

    /// `bar64=1`: virtio-pci's 64-bit prefetchable BAR 4, sized, reprogrammed, over RAM and
    /// back, line for line as under QEMU.
    @Test func pcibar64KernelMatchesQEMU() throws {
        #expect(Self.virtioBAR4Is64Bit, "virtio-pci BAR 4 is a 64-bit prefetchable memory BAR, as QEMU's")
        let flags = Harness.qemuFlags(kernel: try GuestKernels.path("pcibar"), append: "bar64=1", extra: ["-device", "virtio-rng-pci"])
        let v = try Harness.vmm(flags)
        let vl = Harness.serialLines(v.output)
        #expect(vl.contains("PASS pcibar") && v.status == 1, "\(v.output)")
        guard let q = try Harness.qemuOrKnownIssue(flags) else { return }
        #expect(vl == Harness.serialLines(q.output), "vmm:\n\(v.output)\nqemu:\n\(q.output)")
    }
}
