import Memory
import Synchronization
import VMMSys

/// A 16550A UART (COM1 on the PC: I/O 0x3f8-0x3ff, IRQ 4).
///
/// All eight registers are modelled: RBR/THR and the divisor latch (DLAB), IER, IIR/FCR with
/// 16-byte FIFOs, LCR, MCR with loopback, LSR, MSR and SCR. Transmission is immediate: a byte
/// written to THR goes to the backend (or, in loopback, to the receiver) before the write
/// returns, so LSR always shows THRE|TEMT to a polling writer, and the THR-empty interrupt is
/// re-armed after each byte as on QEMU. The interrupt line is level-driven from the pending
/// sources exactly as QEMU's `serial_update_irq` computes it. Input arrives through
/// `receive(_:)`; bytes the UART cannot take yet wait in an input queue (the chardev's flow
/// control in QEMU) and move in as the guest reads, as many at a time as QEMU's
/// `serial_can_receive` asks for: with FIFOs on, up to the trigger level, then one by one.
///
/// With FIFOs on, data left unread for four character times (at the rate the divisor and LCR
/// give, 9600 baud 8N1 after reset) raises the character-timeout interrupt (IIR 0x0C), as
/// QEMU's `fifo_timeout_timer`: each byte received and each RBR read that leaves data re-arms
/// it. A small thread per UART (started at the first arm) drives the interrupt line when the
/// time comes; every register access also applies an expired timeout first, so a polling guest
/// sees it on time however that thread is scheduled. The 16-byte receive FIFO never overwrites:
/// an overrun sets LSR.OE and drops the byte (`recv_fifo_put`).
///
/// Deliberately different from QEMU: in loopback the receiver hears only the transmitter (QEMU
/// also accepts host input there; a real 16550 isolates its serial input in loopback).
///
/// Every register access is one byte (`valid` and `implementation` 1...1); wider guest
/// accesses are split by the memory core. QEMU: serial (hw/char/serial.c), "isa-serial".
public final class SerialPort: Sendable {
    /// The 8 registers; the machine maps it at the UART's base port.
    public let region: MemoryRegion
    /// COM1's base port.
    public static let com1Base: UInt64 = 0x3f8
    /// COM1's ISA IRQ.
    public static let com1IRQ = 4
    /// Input bytes waiting beyond the UART's own buffers are dropped past this many.
    public static let inputQueueLimit = 1 << 16
    /// The UART's input clock divided by 16: the rate at divisor 1. QEMU: baudbase 115200.
    public static let baudBase: UInt64 = 115_200

    private let state: Mutex<State>
    private let irq: IRQ
    private let backend: any SerialBackend
    private let clock: @Sendable () -> UInt64
    private let timer: CharacterTimer?

    // Register bits (names as in QEMU / Linux serial_reg.h).
    static let lcrDLAB: UInt8 = 0x80
    static let ierRDI: UInt8 = 0x01, ierTHRI: UInt8 = 0x02, ierRLSI: UInt8 = 0x04, ierMSI: UInt8 = 0x08
    static let iirNoInt: UInt8 = 0x01, iirID: UInt8 = 0x06, iirMSI: UInt8 = 0x00, iirTHRI: UInt8 = 0x02
    static let iirRDI: UInt8 = 0x04, iirRLSI: UInt8 = 0x06, iirCTI: UInt8 = 0x0c, iirFIFOs: UInt8 = 0xc0
    static let fcrFE: UInt8 = 0x01, fcrRFR: UInt8 = 0x02, fcrXFR: UInt8 = 0x04
    static let lsrDR: UInt8 = 0x01, lsrOE: UInt8 = 0x02, lsrBI: UInt8 = 0x10
    static let lsrTHRE: UInt8 = 0x20, lsrTEMT: UInt8 = 0x40, lsrIntAny: UInt8 = 0x1e
    static let mcrLoop: UInt8 = 0x10, mcrOUT2: UInt8 = 0x08
    static let msrDCD: UInt8 = 0x80, msrRI: UInt8 = 0x40, msrDSR: UInt8 = 0x20, msrCTS: UInt8 = 0x10
    static let msrAnyDelta: UInt8 = 0x0f
    static let fifoSize = 16

    struct State {
        var divider: UInt16 = 0x0c   // 9600 baud, QEMU's reset value
        var rbr: UInt8 = 0
        var ier: UInt8 = 0
        var iir: UInt8 = SerialPort.iirNoInt
        var fcr: UInt8 = 0
        var lcr: UInt8 = 0
        var mcr: UInt8 = SerialPort.mcrOUT2      // QEMU's serial_reset sets OUT2
        var lsr: UInt8 = SerialPort.lsrTHRE | SerialPort.lsrTEMT
        var msr: UInt8 = SerialPort.msrDCD | SerialPort.msrDSR | SerialPort.msrCTS
        var scr: UInt8 = 0
        var thrPending = false
        var timeoutPending = false
        var recvFIFO: [UInt8] = []
        var triggerLevel = 1
        /// One character's time on the line in ns, from the divisor and LCR.
        /// QEMU: `char_transmit_time` (9600 baud, 10 bits after reset).
        var charTransmitNanoseconds: UInt64 = 1_000_000_000 / 9600 * 10
        /// When the character timeout runs out, if it is armed (on `clock`).
        var timeoutDeadline: UInt64?
        /// Host input the UART has not taken yet (oldest first, consumed from `inputHead`).
        var input: [UInt8] = []
        var inputHead = 0
        /// The level last driven on the IRQ line.
        var irqLevel = false

        var fifoEnabled: Bool { fcr & SerialPort.fcrFE != 0 }
        var loopback: Bool { mcr & SerialPort.mcrLoop != 0 }
    }

    /// The ports and IRQs of ISA serial ports 0–3 (COM1–COM4). QEMU: isa_serial_io, isa_serial_irq.
    public static let isaBases: [UInt64] = [0x3f8, 0x2f8, 0x3e8, 0x2e8]
    /// Their IRQ lines, by index.
    public static let isaIRQs: [UInt32] = [4, 3, 4, 3]

    /// Creates a UART that transmits to `backend` and interrupts through `irq`. `clock` (ns,
    /// monotonic) times the character timeout; `timerThread: false` leaves that timeout to be
    /// noticed at the next register access only (tests with a hand-driven clock).
    public init(backend: any SerialBackend = NullSerialBackend(), irq: IRQ = .disconnected(), name: String = "serial",
                clock: @escaping @Sendable () -> UInt64 = ACPIPMTimer.monotonicNanoseconds, timerThread: Bool = true) {
        let state = Mutex(State())
        self.state = state
        self.irq = irq
        self.backend = backend
        self.clock = clock
        timer = timerThread ? CharacterTimer(clock: clock, name: name) : nil
        let owner = RegionOwner<SerialPort>()
        region = .io(name: name, size: 8, ops: owner.ops(read: SerialPort.read, write: SerialPort.write,
                                                         unbound: 0xff, valid: .bytes, implementation: .bytes))
        owner.set(self)
        timer?.setHandler { [weak self] in self?.characterTimeout() }
    }

    deinit { timer?.stop() }

    /// Maps the UART at `base` (default COM1, 0x3f8) in the I/O address space.
    public func map(into io: MemoryRegion, at base: UInt64 = SerialPort.com1Base) {
        io.addSubregion(region, at: base)
    }

    /// Queues host input (stdin, tests) for the guest; returns how many bytes were accepted
    /// (the rest overflowed the input queue). QEMU: `serial_receive1` behind chardev flow control.
    @discardableResult
    public func receive(_ bytes: [UInt8]) -> Int {
        state.withLock { s in
            expireTimeout(&s)
            let room = max(0, SerialPort.inputQueueLimit - (s.input.count - s.inputHead))
            let n = min(room, bytes.count)
            s.input.append(contentsOf: bytes.prefix(n))
            pumpInput(&s)
            updateIRQ(&s)
            return n
        }
    }

    /// Bytes received but not yet read by the guest (inside the UART and queued).
    public var pendingInput: Int {
        state.withLock { s in
            let inUART = s.fifoEnabled ? s.recvFIFO.count : (s.lsr & SerialPort.lsrDR != 0 ? 1 : 0)
            return inUART + s.input.count - s.inputHead
        }
    }

    // MARK: Registers

    func read(_ offset: UInt64, _ size: Int) -> UInt64 { UInt64(readRegister(offset)) }
    func write(_ offset: UInt64, _ value: UInt64, _ size: Int) { writeRegister(offset, UInt8(truncatingIfNeeded: value)) }

    func readRegister(_ offset: UInt64) -> UInt8 {
        state.withLock { s in
            expireTimeout(&s)
            switch offset & 7 {
            case 0:
                if s.lcr & SerialPort.lcrDLAB != 0 { return UInt8(truncatingIfNeeded: s.divider) }
                var value: UInt8
                if s.fifoEnabled {
                    value = s.recvFIFO.isEmpty ? 0 : s.recvFIFO.removeFirst()
                    if s.recvFIFO.isEmpty {
                        s.lsr &= ~(SerialPort.lsrDR | SerialPort.lsrBI)
                    } else {
                        armTimeout(&s)          // data left: four more character times
                    }
                } else {
                    value = s.rbr
                    s.lsr &= ~(SerialPort.lsrDR | SerialPort.lsrBI)
                }
                s.timeoutPending = false
                pumpInput(&s)
                updateIRQ(&s)
                return value
            case 1:
                if s.lcr & SerialPort.lcrDLAB != 0 { return UInt8(truncatingIfNeeded: s.divider >> 8) }
                return s.ier
            case 2:
                let value = s.iir
                if value & SerialPort.iirID == SerialPort.iirTHRI && value & 0x08 == 0 {
                    s.thrPending = false
                    updateIRQ(&s)
                }
                return value
            case 3:
                return s.lcr
            case 4:
                return s.mcr
            case 5:
                let value = s.lsr
                if s.lsr & (SerialPort.lsrBI | SerialPort.lsrOE) != 0 {
                    s.lsr &= ~(SerialPort.lsrBI | SerialPort.lsrOE)
                    updateIRQ(&s)
                }
                return value
            case 6:
                if s.loopback {
                    // Modem outputs fed back: RTS→CTS, DTR→DSR, OUT1→RI, OUT2→DCD.
                    return (s.mcr & 0x0c) << 4 | (s.mcr & 0x02) << 3 | (s.mcr & 0x01) << 5
                }
                let value = s.msr
                if s.msr & SerialPort.msrAnyDelta != 0 {
                    s.msr &= 0xf0
                    updateIRQ(&s)
                }
                return value
            default:
                return s.scr
            }
        }
    }

    func writeRegister(_ offset: UInt64, _ value: UInt8) {
        state.withLock { s in
            expireTimeout(&s)
            switch offset & 7 {
            case 0:
                if s.lcr & SerialPort.lcrDLAB != 0 {
                    s.divider = s.divider & 0xff00 | UInt16(value)
                    updateParameters(&s)
                    return
                }
                // Load THR: the line drops while the byte is "in flight", then THR is empty again.
                s.thrPending = false
                s.lsr &= ~(SerialPort.lsrTHRE | SerialPort.lsrTEMT)
                updateIRQ(&s)
                if s.loopback {
                    receiveByte(&s, value)
                } else {
                    backend.write([value])
                }
                s.lsr |= SerialPort.lsrTHRE | SerialPort.lsrTEMT
                s.thrPending = true
                updateIRQ(&s)
            case 1:
                if s.lcr & SerialPort.lcrDLAB != 0 {
                    s.divider = s.divider & 0x00ff | UInt16(value) << 8
                    updateParameters(&s)
                    return
                }
                let changed = (s.ier ^ value) & 0x0f
                s.ier = value & 0x0f
                if changed & SerialPort.ierTHRI != 0 {
                    s.thrPending = s.ier & SerialPort.ierTHRI != 0 && s.lsr & SerialPort.lsrTHRE != 0
                }
                if changed != 0 { updateIRQ(&s) }
            case 2:
                var fcr = value
                // Toggling the FIFO enable flushes both FIFOs.
                if (fcr ^ s.fcr) & SerialPort.fcrFE != 0 { fcr |= SerialPort.fcrXFR | SerialPort.fcrRFR }
                if fcr & SerialPort.fcrRFR != 0 {
                    s.lsr &= ~(SerialPort.lsrDR | SerialPort.lsrBI)
                    s.timeoutPending = false
                    s.timeoutDeadline = nil
                    timer?.arm(at: nil)
                    s.recvFIFO.removeAll()
                }
                if fcr & SerialPort.fcrXFR != 0 {
                    s.lsr |= SerialPort.lsrTHRE
                    s.thrPending = true
                }
                s.fcr = fcr & 0xc9
                if s.fifoEnabled {
                    s.iir |= SerialPort.iirFIFOs
                    s.triggerLevel = [1, 4, 8, 14][Int(fcr >> 6)]
                } else {
                    s.iir &= ~SerialPort.iirFIFOs
                }
                pumpInput(&s)
                updateIRQ(&s)
            case 3:
                s.lcr = value
                updateParameters(&s)
            case 4:
                let wasLoopback = s.loopback
                s.mcr = value & 0x1f
                // Leaving loopback lets queued host input in again.
                if wasLoopback && !s.loopback { pumpInput(&s) }
                updateIRQ(&s)
            case 5:
                break   // LSR is read-only (factory test writes ignored, as QEMU)
            case 6:
                break   // MSR: QEMU ignores writes
            default:
                s.scr = value
            }
        }
    }

    // MARK: Receive path and interrupts (lock held)

    /// One byte into the receiver. QEMU: `serial_receive1`, `recv_fifo_put`.
    private func receiveByte(_ s: inout State, _ byte: UInt8) {
        if s.fifoEnabled {
            if s.recvFIFO.count >= SerialPort.fifoSize {
                s.lsr |= SerialPort.lsrOE          // an overrun never overwrites the FIFO
            } else {
                s.recvFIFO.append(byte)
            }
            armTimeout(&s)
        } else {
            if s.lsr & SerialPort.lsrDR != 0 { s.lsr |= SerialPort.lsrOE }
            s.rbr = byte
        }
        s.lsr |= SerialPort.lsrDR
    }

    /// How many bytes the receiver takes from the host now. With FIFOs: up to the trigger
    /// level while below it, one at a time above it, none when full (so host input does not
    /// overrun the trigger level the guest chose); without: one when RBR is empty.
    /// QEMU: `serial_can_receive`.
    static func canReceive(_ s: State) -> Int {
        if s.fifoEnabled {
            let n = s.recvFIFO.count
            guard n < SerialPort.fifoSize else { return 0 }
            return n <= s.triggerLevel ? s.triggerLevel - n : 1
        }
        return s.lsr & SerialPort.lsrDR == 0 ? 1 : 0
    }

    /// Moves queued host input into the receiver while it takes it (never in loopback, where
    /// the receiver hears only the transmitter). QEMU: the chardev's `serial_can_receive` /
    /// `serial_receive1` loop.
    private func pumpInput(_ s: inout State) {
        while s.inputHead < s.input.count && !s.loopback {
            guard SerialPort.canReceive(s) > 0 else { break }
            receiveByte(&s, s.input[s.inputHead])
            s.inputHead += 1
        }
        if s.inputHead == s.input.count {
            s.input.removeAll(keepingCapacity: true)
            s.inputHead = 0
        } else if s.inputHead > 4096 {
            s.input.removeFirst(s.inputHead)
            s.inputHead = 0
        }
    }

    /// Re-arms the character timeout: four character times from now. QEMU: `timer_mod` of
    /// `fifo_timeout_timer`.
    private func armTimeout(_ s: inout State) {
        let (delay, overflow) = s.charTransmitNanoseconds.multipliedReportingOverflow(by: 4)
        let deadline = clock() &+ (overflow ? UInt64.max / 2 : delay)
        s.timeoutDeadline = deadline
        timer?.arm(at: deadline)
    }

    /// Applies an expired character timeout: with data in the FIFO, IIR reports 0x0C.
    /// QEMU: `fifo_timeout_int`.
    private func expireTimeout(_ s: inout State) {
        guard let deadline = s.timeoutDeadline, clock() >= deadline else { return }
        s.timeoutDeadline = nil
        if s.fifoEnabled && !s.recvFIFO.isEmpty {
            s.timeoutPending = true
            updateIRQ(&s)
        }
    }

    /// The timer thread's call when a deadline passed.
    private func characterTimeout() {
        state.withLock { s in expireTimeout(&s) }
    }

    /// The character time from the divisor and the frame LCR describes (start bit, 5-8 data
    /// bits, parity, 1-2 stop bits); a divisor of 0 or above the base rate changes nothing.
    /// QEMU: `serial_update_parameters`.
    private func updateParameters(_ s: inout State) {
        let divider = UInt64(s.divider)
        guard divider != 0, divider <= SerialPort.baudBase else { return }
        let speed = SerialPort.baudBase / divider
        var frame: UInt64 = 1 + UInt64(s.lcr & 0x03) + 5 + (s.lcr & 0x04 != 0 ? 2 : 1)
        if s.lcr & 0x08 != 0 { frame += 1 }
        s.charTransmitNanoseconds = 1_000_000_000 / speed * frame
    }

    /// Recomputes IIR from the pending sources in priority order and drives the line.
    /// QEMU: `serial_update_irq`.
    private func updateIRQ(_ s: inout State) {
        var id = SerialPort.iirNoInt
        if s.ier & SerialPort.ierRLSI != 0 && s.lsr & SerialPort.lsrIntAny != 0 {
            id = SerialPort.iirRLSI
        } else if s.ier & SerialPort.ierRDI != 0 && s.timeoutPending {
            id = SerialPort.iirCTI
        } else if s.ier & SerialPort.ierRDI != 0 && s.lsr & SerialPort.lsrDR != 0
                    && (!s.fifoEnabled || s.recvFIFO.count >= s.triggerLevel) {
            id = SerialPort.iirRDI
        } else if s.ier & SerialPort.ierTHRI != 0 && s.thrPending {
            id = SerialPort.iirTHRI
        } else if s.ier & SerialPort.ierMSI != 0 && s.msr & SerialPort.msrAnyDelta != 0 {
            id = SerialPort.iirMSI
        }
        s.iir = id | (s.iir & 0xf0)
        let level = id != SerialPort.iirNoInt
        s.irqLevel = level
        irq.set(level)
    }
}


/// A deadline on a monotonic clock served by its own thread, started at the first `arm`:
/// `arm(at:)` replaces the deadline (nil cancels), the handler runs once on the thread at or
/// after it (the caller re-checks the time under its own lock, so a late or stale call is
/// harmless), and `stop()` ends the thread. Waits go through epoll with millisecond timeouts,
/// woken early by an eventfd when the deadline changes. QEMU: a QEMU_CLOCK_VIRTUAL timer.
final class CharacterTimer: Sendable {
    private struct State {
        var deadline: UInt64?
        var started = false
        var stopped = false
        var handler: (@Sendable () -> Void)?
    }
    private let state = Mutex(State())
    private let clock: @Sendable () -> UInt64
    private let name: String
    private let wake: EventNotifier
    private let epoll: Epoll

    init?(clock: @escaping @Sendable () -> UInt64, name: String) {
        guard let wake = try? EventNotifier(), let epoll = try? Epoll(), (try? epoll.add(wake.fileDescriptor, token: 0)) != nil else {
            return nil
        }
        self.clock = clock
        self.name = name
        self.wake = wake
        self.epoll = epoll
    }

    func setHandler(_ handler: @escaping @Sendable () -> Void) { state.withLock { $0.handler = handler } }

    func arm(at deadline: UInt64?) {
        let (start, earlier) = state.withLock { s -> (Bool, Bool) in
            let old = s.deadline
            s.deadline = deadline
            // A later deadline (or none) needs no wake-up: the thread finds it when it wakes.
            let earlier = deadline.map { d in old.map { d < $0 } ?? true } ?? false
            guard deadline != nil, !s.started, !s.stopped else { return (false, earlier) }
            s.started = true
            return (true, earlier)
        }
        if start {
            do {
                try HostThread.start(name: String("\(name)-timer".prefix(15))) { [self] in loop() }
            } catch {
                state.withLock { $0.started = false }   // register accesses still apply the timeout
            }
        }
        if earlier { wake.set() }
    }

    func stop() {
        state.withLock { $0.stopped = true }
        wake.set()
    }

    private func loop() {
        while true {
            let (deadline, stopped, handler) = state.withLock { ($0.deadline, $0.stopped, $0.handler) }
            if stopped { return }
            var timeout: Int32 = -1
            if let deadline {
                let now = clock()
                if now >= deadline {
                    state.withLock { if $0.deadline == deadline { $0.deadline = nil } }
                    handler?()
                    continue
                }
                timeout = Int32(clamping: (deadline - now) / 1_000_000 + 1)
            }
            _ = try? epoll.wait(maxEvents: 1, timeoutMilliseconds: timeout)
            _ = wake.testAndClear()
        }
    }
}
