import Memory
import Synchronization
import TestSupport
import Testing
@testable import Devices

@Suite struct PowerAndResetTests {
    final class Flag: Sendable {
        let count = Atomic<Int>(0)
        func hit() { count.add(1, ordering: .relaxed) }
        var value: Int { count.load(ordering: .relaxed) }
    }

    let system = MemorySystem()
    let io = MemoryRegion.container(name: "io", size: 0x10000)

    @Test func pm1ControlAlwaysACPIModeAndSleepTypes() {
        let entered = Mutex<[ACPIPMRegisters.SleepState]>([])
        let pm = ACPIPMRegisters(sleep: { state in entered.withLock { $0.append(state) } })
        pm.map(into: io)
        let space = AddressSpace(root: io, name: "I/O", system: system)
        #expect(space.read(0x604, size: 2).value & 1 == 1)             // SCI_EN
        space.write(0x602, value: 0x0121, size: 2)                       // PM1 enable
        #expect(space.read(0x600, size: 4).value == 0x0121_0000)
        space.write(0x604, value: 5 << 10 | 1 << 13, size: 2)            // SLP_TYP 5: no state
        space.write(0x604, value: 1 << 10, size: 2)                      // S3 type without SLP_EN
        #expect(entered.withLock { $0 }.isEmpty)
        // PIIX4's types as QEMU: 0 soft-off, 1 S3, 2 S4. QEMU: acpi_pm1_cnt_write().
        for typ: UInt64 in [0, 1, 2] { space.write(0x604, value: typ << 10 | 1 << 13, size: 2) }
        #expect(entered.withLock { $0 } == [.s5, .s3, .s4])
        #expect(space.read(0x604, size: 2).value & (1 << 13) == 0)        // SLP_EN reads 0
    }

    /// After a wake-up: WAK_STS with RTC_STS (RTC alarm) or PWRBTN_STS (anything else), write
    /// 1 to clear; RTC_EN gates the alarm. QEMU: acpi_notify_wakeup(), acpi_pm1_evt_write_en().
    @Test func wakeStatusAndRTCEnable() {
        let pm = ACPIPMRegisters(sleep: { _ in })
        pm.map(into: io)
        let space = AddressSpace(root: io, name: "I/O", system: system)
        #expect(!pm.rtcWakeEnabled)
        space.write(0x602, value: 0x0400, size: 2)
        #expect(pm.rtcWakeEnabled)
        pm.reset()
        #expect(!pm.rtcWakeEnabled)
        pm.noteWakeup(.rtc)
        #expect(space.read(0x600, size: 2).value == 0x8400)
        space.write(0x600, value: 0x8400, size: 2)
        pm.noteWakeup(.other)
        #expect(space.read(0x600, size: 2).value == 0x8100)
    }

    @Test func resetControlAndKeyboardReset() {
        let resets = Flag()
        ResetControl(reset: { resets.hit() }).map(into: io)
        I8042(reset: { resets.hit() }).map(into: io)
        let space = AddressSpace(root: io, name: "I/O", system: system)
        space.write(0xcf9, value: 0x02, size: 1)
        #expect(resets.value == 0 && space.read(0xcf9, size: 1).value == 0x02)
        space.write(0xcf9, value: 0x06, size: 1)
        #expect(resets.value == 1)
        #expect(space.read(0x64, size: 1).value == 0x1c)
        space.write(0x64, value: 0xfe, size: 1)
        #expect(resets.value == 2)
        // Every pulse command with bit 0 low resets (QEMU: KBD_CCMD_PULSE_BITS_3_0); others do not.
        for command: UInt64 in [0xf0, 0xf2, 0xfc] { space.write(0x64, value: command, size: 1) }
        #expect(resets.value == 5)
        for command: UInt64 in [0xf1, 0xff, 0xe0, 0xd1] { space.write(0x64, value: command, size: 1) }
        #expect(resets.value == 5)
    }
}

/// The i8042 as SeaBIOS and an OS probe it: controller self test and interface test, the
/// command byte, the keyboard's reset/identify/scan-code set, the mouse through 0xd4, IRQ 1
/// while a keyboard reply waits with the keyboard interrupt enabled, a bounded reply queue.
/// QEMU: kbd_write_command(), kbd_write_data(), ps2_write_keyboard(), ps2_write_mouse().
@Suite struct I8042Tests {
    let bus = TestBus()
    let keyboardIRQ = IRQRecorder(), mouseIRQ = IRQRecorder()
    let controller: I8042

    init() {
        controller = I8042(firmware: true, keyboardIRQ: keyboardIRQ.irq, mouseIRQ: mouseIRQ.irq, reset: {})
        controller.map(into: bus.io)
    }

    /// Every byte waiting in the output buffer.
    func drain() -> [UInt8] {
        var out: [UInt8] = []
        while bus.inb(0x64) & 1 != 0, out.count < 64 { out.append(bus.inb(0x60)) }
        return out
    }

    @Test func controllerAsSeaBIOSFindsIt() {
        #expect(bus.inb(0x64) == 0x18)                      // QEMU's reset status: no system flag yet
        bus.outb(0x64, 0x20)
        #expect(drain() == [0x03])                           // command byte: both interrupts
        bus.outb(0x64, 0xaa)
        #expect(drain() == [0x55] && bus.inb(0x64) & 0x04 != 0)
        bus.outb(0x64, 0xab)
        #expect(drain() == [0x00])
        #expect(keyboardIRQ.raises == 3, "each reply raised IRQ 1: the reset command byte enables it")
        bus.outb(0x64, 0x60); bus.outb(0x60, 0x30)           // interrupts off, both devices disabled
        bus.outb(0x60, 0xff)                                 // keyboard reset (re-enables the keyboard)
        #expect(drain() == [0xfa, 0xaa])
        bus.outb(0x60, 0xf5); bus.outb(0x60, 0xf0); bus.outb(0x60, 0x02); bus.outb(0x60, 0xf4)
        #expect(drain() == [0xfa, 0xfa, 0xfa, 0xfa])
        bus.outb(0x60, 0xf2)
        #expect(drain() == [0xfa, 0xab, 0x83])               // MF2, untranslated
        bus.outb(0x60, 0x77)
        #expect(drain() == [0xfe])                           // unknown: resend
        #expect(keyboardIRQ.raises == 3, "interrupts were off since")
    }

    @Test func keyboardInterruptFollowsTheQueue() {
        bus.outb(0x64, 0x60); bus.outb(0x60, 0x41)           // keyboard interrupt, translation
        bus.outb(0x60, 0xf2)
        #expect(keyboardIRQ.level)
        #expect(bus.inb(0x60) == 0xfa && keyboardIRQ.level)
        #expect(bus.inb(0x60) == 0xab && bus.inb(0x60) == 0x41)
        #expect(!keyboardIRQ.level && bus.inb(0x60) == 0x41, "an empty buffer reads the last byte again")
        for _ in 0..<40 { bus.outb(0x60, 0xee) }             // 40 echoes: the queue keeps 16
        #expect(drain().count == 16)
    }

    @Test func mouseThroughD4() {
        bus.outb(0x64, 0xd4); bus.outb(0x60, 0xff)
        #expect(bus.inb(0x64) & 0x21 == 0x21 && mouseIRQ.level)
        #expect(drain() == [0xfa, 0xaa, 0x00] && !mouseIRQ.level)
        bus.outb(0x64, 0xd4); bus.outb(0x60, 0xf3); bus.outb(0x64, 0xd4); bus.outb(0x60, 40)
        bus.outb(0x64, 0xd4); bus.outb(0x60, 0xe9)
        #expect(drain() == [0xfa, 0xfa, 0xfa, 0x00, 0x02, 40])
        bus.outb(0x64, 0xd0)
        #expect(drain() == [0xcf])                           // output port
        controller.reset()
        #expect(bus.inb(0x64) == 0x18 && drain().isEmpty)
    }
}
