import Memory
import Synchronization
import TestSupport
import Testing
@testable import Devices

/// Counts listener commits, to check that one configuration write is one memory transaction.
private final class CommitCounter: MemoryListener {
    let commits = Atomic<Int>(0)
    var priority: Int { 0 }
    var handlesEventfds: Bool { false }
    func commit() { commits.add(1, ordering: .relaxed) }
}

/// The i440FX's PAM segments and SMRAM through the memory API, as QEMU's pam.c and i440fx.c
/// drive them: four aliases per segment with exactly one enabled, the mode from the right PAM
/// register nibble, every switch of one configuration write in one transaction, SMRAM's
/// D_OPEN showing RAM in the VGA window. QEMU: init_pam(), pam_update(),
/// i440fx_update_memory_mappings(), i440fx_write_config().
@Suite struct PAMTests {
    let system = MemorySystem()
    let root = MemoryRegion.container(name: "system", size: UInt128(1) << 64)
    let pci = MemoryRegion.container(name: "pci", size: UInt128(1) << 64)
    let ram: MemoryRegion
    let space: AddressSpace
    let bridge = I440FXBridge()
    let control: I440FXMemoryControl

    /// RAM (2 MiB) of 0x11 bytes; PCI memory holds a ROM of 0xee bytes over 0xc0000-0xfffff and
    /// a region at 0xa0000 that reads 0x5a (a VGA window stand-in).
    init() throws {
        ram = try MemoryRegion.ram(name: "pc.ram", size: 0x20_0000)
        root.addSubregion(MemoryRegion.alias(name: "ram-below-4g", target: ram, offset: 0, size: 0x20_0000), at: 0)
        root.addSubregion(pci, at: 0, priority: -1)
        let rom = try MemoryRegion.rom(name: "rom", size: 0x4_0000)
        pci.addSubregion(rom, at: 0xc_0000, priority: 1)
        pci.addSubregion(MemoryRegion.io(name: "vga", size: 0x2_0000, ops: MemoryRegionOps(read: { _, _ in 0x5a5a_5a5a }, write: { _, _, _ in })),
                         at: 0xa_0000)
        space = AddressSpace(root: root, name: "memory", system: system)
        let loader = space.guestMemory
        try loader.write([UInt8](repeating: 0x11, count: 0x10_0000), at: 0)          // RAM, before PAM
        control = I440FXMemoryControl(ram: ram, pci: pci, system: root)
        bridge.attachMemoryControl(control, ramSize: 0x20_0000)
        try loader.write([UInt8](repeating: 0xee, count: 0x4_0000), at: 0xc_0000)   // through PAM mode 0: the ROM
    }

    func byte(_ address: UInt64) -> UInt64 { space.read(address, size: 1).value }

    @Test func segmentsTakeQEMUsNibbles() {
        // Segment 0 is 0xf0000 (PAM0 bits 5:4); then 0xc0000 + 16 KiB × (i - 1), PAM[(i+1)/2],
        // odd i the low nibble. QEMU: pam_update(), config[I440FX_PAM + DIV_ROUND_UP(i, 2)].
        let starts: [UInt64] = [0xf_0000] + (0..<12).map { 0xc_0000 + UInt64($0) * 0x4000 }
        #expect(control.segments.map(\.start) == starts)
        for i in 0..<13 {
            for mode in 0..<4 {
                var pam = [UInt8](repeating: 0, count: 7)
                let register = (i + 1) / 2
                pam[register] = UInt8(i & 1 == 1 ? mode : mode << 4)
                #expect(I440FXMemoryControl.mode(of: i, pam) == mode, "segment \(i) mode \(mode)")
                for j in 0..<13 where j != i { #expect(I440FXMemoryControl.mode(of: j, pam) == 0) }
            }
        }
    }

    @Test func modesMapPCIRomRAM() {
        #expect(byte(0xf_0000) == 0xee && byte(0xc_0000) == 0xee, "reset: PCI (the ROM) everywhere")
        #expect(space.write(0xf_0000, value: 0x22, size: 1) == .decodeError, "the ROM drops writes")
        bridge.configWrite(offset: 0x59, value: 0x30, size: 1)          // 0xf0000: RAM
        #expect(byte(0xf_0000) == 0x11)
        #expect(space.write(0xf_0000, value: 0x22, size: 1) == .ok && byte(0xf_0000) == 0x22)
        bridge.configWrite(offset: 0x59, value: 0x10, size: 1)          // read-only RAM
        #expect(byte(0xf_0000) == 0x22 && space.write(0xf_0000, value: 0x33, size: 1) == .decodeError && byte(0xf_0000) == 0x22)
        bridge.configWrite(offset: 0x59, value: 0x20, size: 1)          // write-only: RAM, as QEMU maps it
        #expect(space.write(0xf_0000, value: 0x44, size: 1) == .ok && byte(0xf_0000) == 0x44)
        bridge.configWrite(offset: 0x59, value: 0x00, size: 1)
        #expect(byte(0xf_0000) == 0xee, "back to PCI: the ROM again, RAM kept underneath")
        bridge.configWrite(offset: 0x59, value: 0x30, size: 1)
        #expect(byte(0xf_0000) == 0x44)
        // Only that segment moved.
        #expect(byte(0xe_c000) == 0xee && control.segments.filter { $0.mode != 0 }.map(\.start) == [0xf_0000])
    }

    @Test func oneTransactionPerWrite() {
        let counter = CommitCounter()
        space.register(counter)
        let before = counter.commits.load(ordering: .relaxed)
        bridge.configWrite(offset: 0x5a, value: 0x3333_3333, size: 4)   // PAM1-4: eight segments at once
        #expect(counter.commits.load(ordering: .relaxed) == before + 1)
        #expect(control.segments.filter { $0.mode == 3 }.count == 8)
        bridge.configWrite(offset: 0x40, value: 0xff, size: 1)          // not PAM: no transaction
        #expect(counter.commits.load(ordering: .relaxed) == before + 1)
    }

    @Test func smramOpenShowsRAMInTheVGAWindow() {
        #expect(bridge.configRead(offset: 0x72, size: 1) == 0x02)
        #expect(byte(0xa_0000) == 0x5a, "closed: the VGA window is PCI")
        bridge.configWrite(offset: 0x72, value: 0x4a, size: 1)          // D_OPEN | G_SMRAME | C_BASE_SEG
        #expect(byte(0xa_0000) == 0x11)
        bridge.configWrite(offset: 0x72, value: 0x0a, size: 1)
        #expect(byte(0xa_0000) == 0x5a)
    }

    @Test func ramSizeRegisterForCoreboot() {
        #expect(bridge.configRead(offset: 0x57, size: 1) == 0)        // 2 MiB / 8 MiB
        let big = I440FXBridge()
        big.attachMemoryControl(I440FXMemoryControl(ram: ram, pci: pci, system: MemoryRegion.container(name: "x", size: 1 << 32)),
                                ramSize: 4 << 30)
        #expect(big.configRead(offset: 0x57, size: 1) == 255)
    }

    /// Hostile writes of every width anywhere in the bridge's configuration space: the machine
    /// never breaks, and every segment always shows exactly one alias, the one its register says.
    @Test func hostileWritesKeepOneAliasPerSegment() {
        var rng = SeededGenerator(seed: SeededGenerator.seedFromEnvironment())
        for _ in 0..<3000 {
            let size = [1, 2, 4][Int.random(in: 0..<3, using: &rng)]
            let offset = Int.random(in: 0x50..<0x80, using: &rng)
            bridge.configWrite(offset: offset, value: UInt32.random(in: 0...UInt32.max, using: &rng), size: size)
        }
        let pam = bridge.configBytes(at: 0x59, count: 7)
        for (i, segment) in control.segments.enumerated() {
            let enabled = segment.aliases.enumerated().filter { $0.element.isEnabled }.map(\.offset)
            #expect(enabled == [I440FXMemoryControl.mode(of: i, pam)], "seed \(rng.seed) segment \(i)")
        }
        #expect(control.smramRegion.isEnabled == (bridge.configBytes(at: 0x72, count: 1)[0] & 0x40 == 0), "seed \(rng.seed)")
    }
}
