import Devices
import Memory
import Synchronization

/// The 16550A UART driven through the I/O port space in every width (the memory core splits
/// wide accesses into register bytes), with host input arriving in between, in and out of
/// loopback, FIFO mode and DLAB.
///
/// Input: ops until the input ends, each `u8` kind then operands.
///
/// Oracle: a model of what must reach the backend — every byte written to THR with DLAB clear
/// outside loopback, in order, nothing else — compared after every op; the interrupt line is
/// high exactly when IIR (read) shows a pending interrupt; LSR always shows THRE|TEMT
/// (transmission is immediate); host input never queues past the documented limit.
func fuzzSerial(_ data: [UInt8]) throws(FuzzFailure) {
    try SerialFixture.shared.with { f throws(FuzzFailure) in try f.run(data) }
}

final class SerialFixture {
    static let shared = Fixture { SerialFixture() }
    static let name = FuzzTarget.serial.rawValue
    static let base = SerialPort.com1Base
    static let maxOps = 1024
    static let maxInput = 4096

    let io: AddressSpace
    let uart: SerialPort
    let backend = CapturingSerialBackend()
    let line = IRQLine()

    init() {
        let system = MemorySystem()
        let (ioRoot, io) = makeSpace("io", size: 0x10000, system: system)
        self.io = io
        uart = SerialPort(backend: backend, irq: line.irq)
        uart.map(into: ioRoot)
    }

    private func out(_ reg: UInt64, _ v: UInt8) { io.write(Self.base + reg, value: UInt64(v), size: 1) }
    private func inb(_ reg: UInt64) -> UInt8 { UInt8(truncatingIfNeeded: io.read(Self.base + reg, size: 1).value) }

    /// Back to the power-on state through the registers: host input drained, divisor 0x0c,
    /// FIFOs flushed and off, RBR 0 (a loopback byte), line status and interrupts clear.
    func reset() {
        out(4, 0)
        out(3, 0)
        var guardCount = 0
        while uart.pendingInput > 0 && guardCount < 4 * Self.maxInput { _ = inb(0); guardCount += 1 }
        out(3, 0x80); out(0, 0x0c); out(1, 0); out(3, 0)
        out(4, 0x10)
        out(2, 0x07); out(2, 0)
        out(0, 0); _ = inb(0); _ = inb(5)
        out(1, 0x02); _ = inb(2); out(1, 0)
        out(7, 0)
        out(4, 0)
        _ = backend.take()
    }

    func run(_ data: [UInt8]) throws(FuzzFailure) {
        reset()
        var input = FuzzInput(data)
        var lcr: UInt8 = 0, mcr: UInt8 = 0
        var expected: [UInt8] = []
        var received = 0
        func wrote(_ reg: UInt64, _ v: UInt8) {
            switch reg {
            case 0 where lcr & 0x80 == 0 && mcr & 0x10 == 0: expected.append(v)
            case 3: lcr = v
            case 4: mcr = v & 0x1f
            default: break
            }
        }
        for _ in 0..<Self.maxOps where !input.isEmpty {
            let op = input.u8()
            switch op % 4 {
            case 0:
                let reg = UInt64(op >> 5), v = input.u8()
                out(reg, v)
                wrote(reg, v)
            case 1:
                let reg = UInt64(op >> 5)
                let levelBefore = line.level
                let v = inb(reg)
                // The character timeout follows the host clock (four character times, QEMU's
                // fifo_timeout_timer): it may fire between the level's sample and the IIR read,
                // which then shows it (0x0c) with the line raised only now. Any other mismatch
                // is a bug.
                let timeoutArrived = !levelBefore && v & 0x0f == 0x0c && line.level
                if reg == 2 && !timeoutArrived {
                    try require(levelBefore == (v & 1 == 0), Self.name, "IRQ line \(levelBefore) but IIR reads \(hex(v))")
                }
                if reg == 5 { try require(v & 0x60 == 0x60, Self.name, "LSR reads \(hex(v)) without THRE|TEMT") }
            case 2:     // a wide access, split by the memory core into byte registers
                let reg = UInt64(op >> 5), size = accessSize(input.u8())
                if op & 0x10 != 0 {
                    _ = io.read(Self.base + reg, size: size)
                } else {
                    let v = input.u64()
                    io.write(Self.base + reg, value: v, size: size)
                    for i in 0..<UInt64(size) where reg + i < 8 { wrote(reg + i, UInt8(truncatingIfNeeded: v >> (8 * i))) }
                }
            default:    // host input
                let bytes = input.bytes(Int(op >> 2))
                if received + bytes.count <= Self.maxInput {
                    received += bytes.count
                    uart.receive(bytes)
                }
            }
            let got = backend.bytes
            try require(got == expected, Self.name, "backend got \(got.count) bytes \(got.suffix(8)), the model expects \(expected.count) \(expected.suffix(8))")
            try require(uart.pendingInput <= SerialPort.inputQueueLimit + 17, Self.name, "\(uart.pendingInput) input bytes queued")
        }
    }
}

/// The level an interrupt line was last driven to.
final class IRQLine: Sendable {
    private let state = Atomic<Bool>(false)
    var level: Bool { state.load(ordering: .relaxed) }
    var irq: IRQ { IRQ { [self] in state.store($0, ordering: .relaxed) } }
}
