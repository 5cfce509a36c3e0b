import Memory
import Synchronization
import TestSupport
import Testing
@testable import Devices
#if canImport(Glibc)
import Glibc
#endif

/// The 16550A's receive FIFO as QEMU's hw/char/serial.c models it: overruns never overwrite,
/// trigger levels 1/4/8/14, the character timeout after four character times, host input
/// taken only up to the trigger level, the bounded input queue. The clock is driven by hand
/// (no timer thread) except in the test of the thread itself. Guests/tests/uart.c runs the
/// same behaviours in a guest under vmm and QEMU (KernelTests).
@Suite struct SerialFIFOTests {
    final class ManualClock: Sendable {
        let ns = Atomic<UInt64>(1_000_000)
        var now: UInt64 { ns.load(ordering: .relaxed) }
        func advance(_ d: UInt64) { ns.add(d, ordering: .relaxed) }
    }

    let bus = TestBus()
    let clock = ManualClock()
    let recorder = IRQRecorder()
    let uart: SerialPort

    init() {
        let clock = self.clock
        uart = SerialPort(backend: CapturingSerialBackend(), irq: recorder.irq, clock: { clock.now }, timerThread: false)
        uart.map(into: bus.io)
    }

    func iir() -> UInt8 { bus.inb(0x3fa) }
    func lsr() -> UInt8 { bus.inb(0x3fd) }

    /// Divisor `d`, LCR `lcr` (DLAB off afterwards).
    func rate(divisor d: UInt16, lcr: UInt8 = 0x03) {
        bus.outb(0x3fb, 0x80)
        bus.outb(0x3f8, UInt64(d & 0xff))
        bus.outb(0x3f9, UInt64(d >> 8))
        bus.outb(0x3fb, UInt64(lcr))
    }

    /// Loopback: each THR write is received.
    func loop(_ bytes: [UInt8]) {
        bus.outb(0x3fc, 0x13)
        for b in bytes { bus.outb(0x3f8, UInt64(b)) }
    }

    func drain() -> [UInt8] {
        var got: [UInt8] = []
        while lsr() & 1 != 0 && got.count < 64 { got.append(bus.inb(0x3f8)) }
        return got
    }

    /// QEMU's serial_reset: MCR has OUT2 set, LSR THRE|TEMT, MSR DCD|DSR|CTS, IIR no interrupt.
    @Test func resetState() {
        #expect(bus.inb(0x3fc) == 0x08)
        #expect(lsr() == 0x60)
        #expect(bus.inb(0x3fe) == 0xb0)
        #expect(iir() == 0x01)
    }

    /// A full FIFO drops further bytes and sets LSR.OE (cleared by reading LSR); the first 16
    /// stay. QEMU: recv_fifo_put().
    @Test func overrunInFIFOModeKeepsTheFirstSixteen() {
        bus.outb(0x3fa, 0x07)
        loop(Array(0..<17))
        #expect(lsr() & 0x03 == 0x03)
        #expect(lsr() & 0x02 == 0)
        #expect(drain() == Array(0..<16))
        loop([0xaa])                                 // room again: no overrun
        #expect(lsr() & 0x03 == 0x01)
    }

    /// With IER.RDI: no interrupt below the trigger level, 0xc4 at it, gone again one read
    /// later; the line follows IIR. QEMU: serial_update_irq(), recv_fifo_itl.
    @Test(arguments: [(UInt8(0x00), 1), (0x40, 4), (0x80, 8), (0xc0, 14)])
    func triggerLevels(_ bits: UInt8, _ level: Int) {
        rate(divisor: 0xffff)                        // four character times: ~23 s of the clock
        bus.outb(0x3f9, 0x01)
        bus.outb(0x3fa, UInt64(bits | 0x07))
        loop(Array(repeating: 0x55, count: level - 1))
        #expect(iir() == 0xc1)
        #expect(!recorder.level)
        loop([0x66])
        #expect(iir() == 0xc4)
        #expect(recorder.level)
        _ = bus.inb(0x3f8)
        #expect(iir() == 0xc1)
        #expect(!recorder.level)
        #expect(drain().count == level - 1)
    }

    /// Data left unread for four character times raises IIR 0x0c (over 0xc4 too); reading a
    /// byte clears it and, with data left, re-arms it. At 115200 8N1 a character is 86800 ns.
    /// QEMU: fifo_timeout_int(), serial_ioport_read() (RBR), serial_update_parameters().
    @Test func characterTimeoutAfterFourCharacterTimes() {
        rate(divisor: 1)
        bus.outb(0x3f9, 0x01)
        bus.outb(0x3fa, 0x87)                        // FIFO on, trigger 8
        loop([1, 2, 3])
        #expect(iir() == 0xc1)
        clock.advance(4 * 86_800 - 1)
        #expect(iir() == 0xc1)
        clock.advance(1)
        #expect(iir() == 0xcc)
        #expect(recorder.level)
        #expect(bus.inb(0x3f8) == 1)
        #expect(iir() == 0xc1, "reading clears the timeout")
        #expect(!recorder.level)
        clock.advance(4 * 86_800)
        #expect(iir() == 0xcc, "two bytes left: it comes again")
        #expect(drain() == [2, 3])
        clock.advance(10 * 86_800)
        #expect(iir() == 0xc1, "an empty FIFO times out to nothing")
        // At the trigger level the timeout outranks received data available.
        loop(Array(0..<8))
        #expect(iir() == 0xc4)
        clock.advance(4 * 86_800)
        #expect(iir() == 0xcc)
        // The FIFO reset cancels it.
        bus.outb(0x3fa, 0x83)
        #expect(iir() == 0xc1 && lsr() & 1 == 0)
    }

    /// The character time follows LCR: 8 data bits, parity, 2 stop bits is 12 bits a character.
    @Test func characterTimeFollowsTheFrame() {
        rate(divisor: 2, lcr: 0x1f)                  // 57600 baud, 8E2: 17361 ns * 12
        bus.outb(0x3f9, 0x01)
        bus.outb(0x3fa, 0x47)                        // trigger 4
        loop([7])
        clock.advance(4 * 17_361 * 12 - 1)
        #expect(iir() == 0xc1)
        clock.advance(1)
        #expect(iir() == 0xcc)
    }

    /// Without FIFOs nothing times out, and a second byte overruns RBR.
    @Test func noTimeoutWithoutFIFO() {
        bus.outb(0x3f9, 0x01)
        loop([1])
        clock.advance(1_000_000_000_000)
        #expect(iir() == 0x04)
        loop([2])
        #expect(lsr() & 0x03 == 0x03)
        #expect(bus.inb(0x3f8) == 2)
    }

    /// Host input moves in up to the trigger level only (then as the guest reads): with
    /// trigger 4 and six bytes queued, IIR shows 0xc4 until fewer than four are left.
    /// QEMU: serial_can_receive().
    @Test func hostInputFillsToTheTriggerLevel() {
        rate(divisor: 0xffff)
        bus.outb(0x3f9, 0x01)
        bus.outb(0x3fa, 0x47)
        #expect(uart.receive([10, 11, 12, 13, 14, 15]) == 6)
        #expect(uart.pendingInput == 6)
        var seen: [(UInt8, UInt8)] = []
        while lsr() & 1 != 0 {
            let b = bus.inb(0x3f8)
            seen.append((b, iir()))
        }
        #expect(seen.map(\.0) == [10, 11, 12, 13, 14, 15])
        #expect(seen.map(\.1) == [0xc4, 0xc4, 0xc1, 0xc1, 0xc1, 0xc1])
        #expect(lsr() & 0x02 == 0, "no overrun from host input")
    }

    /// The host-side queue is bounded: bytes past `inputQueueLimit` are refused, never stored.
    @Test func inputQueueIsBounded() {
        let limit = SerialPort.inputQueueLimit
        #expect(uart.receive([UInt8](repeating: 0x41, count: limit + 100)) == limit)
        #expect(uart.pendingInput == limit)
        #expect(uart.receive([0x42]) == 1)              // RBR took one byte out of the queue
        #expect(uart.receive([0x43]) == 0)
        #expect(uart.pendingInput == limit + 1)
        _ = bus.inb(0x3f8)
        #expect(uart.receive([0x44, 0x45]) == 1)
    }

    /// The timer thread raises the line with no register access at all.
    @Test func timerThreadRaisesTheLine() {
        let recorder = IRQRecorder()
        let bus = TestBus()
        let uart = SerialPort(backend: CapturingSerialBackend(), irq: recorder.irq)
        uart.map(into: bus.io)
        bus.outb(0x3fb, 0x80); bus.outb(0x3f8, 1); bus.outb(0x3f9, 0); bus.outb(0x3fb, 0x03)
        bus.outb(0x3f9, 0x01)
        bus.outb(0x3fa, 0x87)
        bus.outb(0x3fc, 0x13)
        // Cleared before the byte arrives: the timeout may fire (and raise the line) as soon as
        // four character times pass, before this thread runs again on a loaded host.
        recorder.clear()
        bus.outb(0x3f8, 0x31)                           // one byte below trigger 8
        let deadline = ContinuousClock.now + .seconds(30)
        while !recorder.level && ContinuousClock.now < deadline { sched_yield() }
        #expect(recorder.level, "the character timeout raised the line")
        #expect(bus.inb(0x3fa) == 0xcc)
    }
}
