import Foundation
import Memory
import TestSupport
import Testing
@testable import Devices

@Suite struct SerialPortTests {
    let bus = TestBus()
    let out = CapturingSerialBackend()
    let recorder = IRQRecorder()
    let uart: SerialPort

    init() {
        uart = SerialPort(backend: out, irq: recorder.irq)
        uart.map(into: bus.io)
    }

    @Test func transmitsToBackendAndAlwaysShowsTHREmpty() {
        for b in Array("Hi!\n".utf8) {
            #expect(bus.inb(0x3fd) & 0x60 == 0x60)
            bus.outb(0x3f8, UInt64(b))
        }
        #expect(out.text == "Hi!\n")
        #expect(bus.inb(0x3fd) == 0x60)
    }

    @Test func wideWriteIsSplitIntoRegisterBytes() {
        // A 16-bit write at 0x3f8 is two byte writes: THR then IER.
        bus.outw(0x3f8, 0x0241)
        #expect(out.text == "A")
        #expect(bus.inb(0x3f9) == 0x02)
    }

    @Test func divisorLatchBehindDLAB() {
        bus.outb(0x3fb, 0x83)          // DLAB, 8N1
        bus.outb(0x3f8, 0x01)          // DLL
        bus.outb(0x3f9, 0x00)          // DLM
        #expect(bus.inb(0x3f8) == 0x01)
        #expect(bus.inb(0x3f9) == 0x00)
        #expect(out.bytes.isEmpty)     // divisor writes are not transmitted
        bus.outb(0x3fb, 0x03)
        #expect(bus.inb(0x3fb) == 0x03)
        #expect(bus.inb(0x3f9) == 0x00) // IER, untouched by the DLM write
        bus.outb(0x3f8, 0x5a)
        #expect(out.bytes == [0x5a])
    }

    @Test func scratchRegister() {
        bus.outb(0x3ff, 0xa5)
        #expect(bus.inb(0x3ff) == 0xa5)
        bus.outb(0x3ff, 0x00)
        #expect(bus.inb(0x3ff) == 0x00)
    }

    @Test func receiveSetsDataReadyAndInterrupts() {
        bus.outb(0x3f9, 0x01)          // RDI
        #expect(bus.inb(0x3fd) & 0x01 == 0)
        #expect(bus.inb(0x3fa) == 0x01)
        #expect(uart.receive(Array("ok".utf8)) == 2)
        #expect(recorder.level)
        #expect(bus.inb(0x3fa) == 0x04)
        #expect(bus.inb(0x3fd) & 0x01 == 0x01)
        #expect(bus.inb(0x3f8) == UInt8(ascii: "o"))
        #expect(bus.inb(0x3fd) & 0x01 == 0x01)   // the next byte moved in
        #expect(bus.inb(0x3f8) == UInt8(ascii: "k"))
        #expect(bus.inb(0x3fd) & 0x01 == 0)
        #expect(!recorder.level)
        #expect(uart.pendingInput == 0)
    }

    @Test func fifoModeShowsInIIRAndBuffersSixteen() {
        bus.outb(0x3fa, 0x07)          // enable + clear both FIFOs, trigger 1
        #expect(bus.inb(0x3fa) & 0xc0 == 0xc0)
        uart.receive(Array(0..<20))
        #expect(uart.pendingInput == 20)
        var got: [UInt8] = []
        while bus.inb(0x3fd) & 0x01 != 0 { got.append(bus.inb(0x3f8)) }
        #expect(got == Array(0..<20))
        #expect(bus.inb(0x3fd) & 0x02 == 0)   // no overrun: the queue waited
        bus.outb(0x3fa, 0x00)
        #expect(bus.inb(0x3fa) & 0xc0 == 0)
    }

    @Test func loopbackEchoesAndMirrorsModemLines() {
        bus.outb(0x3fc, 0x10 | 0x0b)   // loop, OUT2, RTS, DTR
        bus.outb(0x3f8, 0x77)
        #expect(out.bytes.isEmpty)     // nothing leaves in loopback
        #expect(bus.inb(0x3fd) & 0x01 == 0x01)
        #expect(bus.inb(0x3f8) == 0x77)
        // DTR→DSR(0x20), RTS→CTS(0x10), OUT2→DCD(0x80)
        #expect(bus.inb(0x3fe) == 0xb0)
        // Host input waits while looped back.
        uart.receive([1])
        #expect(bus.inb(0x3fd) & 0x01 == 0)
        bus.outb(0x3fc, 0x0b)
        #expect(bus.inb(0x3fd) & 0x01 == 0x01)
        #expect(bus.inb(0x3f8) == 1)
        #expect(bus.inb(0x3fe) == 0xb0) // DCD|DSR|CTS, QEMU's reset MSR
    }

    @Test func overrunWithoutFIFO() {
        bus.outb(0x3fc, 0x10)
        bus.outb(0x3f8, 1)
        bus.outb(0x3f8, 2)
        #expect(bus.inb(0x3fd) & 0x03 == 0x03)  // DR | OE
        #expect(bus.inb(0x3fd) & 0x02 == 0)     // OE cleared by the read
        #expect(bus.inb(0x3f8) == 2)
    }

    @Test func thrEmptyInterruptLevels() {
        #expect(!recorder.level)
        bus.outb(0x3f9, 0x02)          // enable THRI: THR is empty, so it fires
        #expect(recorder.level)
        #expect(bus.inb(0x3fa) == 0x02)
        // Reading IIR while it reports THRI acknowledges it.
        #expect(!recorder.level)
        #expect(bus.inb(0x3fa) == 0x01)
        recorder.clear()
        bus.outb(0x3f8, 0x41)          // transmitting re-arms it: line drops then rises
        #expect(recorder.history == [false, true])
        #expect(bus.inb(0x3fa) == 0x02)
        bus.outb(0x3f8, 0x42)
        #expect(recorder.level)
        bus.outb(0x3f9, 0x00)          // disabling lowers it
        #expect(!recorder.level)
        #expect(bus.inb(0x3fa) == 0x01)
        #expect(out.text == "AB")
    }

    @Test func receiveInterruptOutranksTHRE() {
        bus.outb(0x3f9, 0x03)
        uart.receive([9])
        #expect(bus.inb(0x3fa) == 0x04)
        _ = bus.inb(0x3f8)
        #expect(bus.inb(0x3fa) == 0x02)
    }

    @Test func fileBackendWrites() throws {
        let path = "/tmp/swift-vmm-serial-\(getpid()).txt"
        do {
            let backend = try FileSerialBackend(path: path)
            let u = SerialPort(backend: backend)
            let b = TestBus()
            u.map(into: b.io)
            for c in "file".utf8 { b.outb(0x3f8, UInt64(c)) }
        }
        let text = try String(contentsOfFile: path, encoding: .utf8)
        unlink(path)
        #expect(text == "file")
    }
}
