import Memory
import Synchronization

/// A 16550A UART (COM1 on the PC: I/O 0x3f8-0x3ff, IRQ 4).
///
/// All eight registers are modelled: RBR/THR and the divisor latch (DLAB), IER, IIR/FCR with
/// 16-byte FIFOs, LCR, MCR with loopback, LSR, MSR and SCR. Transmission is immediate: a byte
/// written to THR goes to the backend (or, in loopback, to the receiver) before the write
/// returns, so LSR always shows THRE|TEMT to a polling writer, and the THR-empty interrupt is
/// re-armed after each byte as on QEMU. The interrupt line is level-driven from the pending
/// sources exactly as QEMU's `serial_update_irq` computes it. Input arrives through
/// `receive(_:)`; bytes the UART cannot take yet wait in an input queue (the chardev's flow
/// control in QEMU) and move in as the guest reads. With FIFOs on, a receive "timeout"
/// (character timeout interrupt) is reported at once instead of after four character times.
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

    private let state: Mutex<State>
    private let irq: IRQ
    private let backend: any SerialBackend

    // Register bits (names as in QEMU / Linux serial_reg.h).
    static let lcrDLAB: UInt8 = 0x80
    static let ierRDI: UInt8 = 0x01, ierTHRI: UInt8 = 0x02, ierRLSI: UInt8 = 0x04, ierMSI: UInt8 = 0x08
    static let iirNoInt: UInt8 = 0x01, iirID: UInt8 = 0x06, iirMSI: UInt8 = 0x00, iirTHRI: UInt8 = 0x02
    static let iirRDI: UInt8 = 0x04, iirRLSI: UInt8 = 0x06, iirCTI: UInt8 = 0x0c, iirFIFOs: UInt8 = 0xc0
    static let fcrFE: UInt8 = 0x01, fcrRFR: UInt8 = 0x02, fcrXFR: UInt8 = 0x04
    static let lsrDR: UInt8 = 0x01, lsrOE: UInt8 = 0x02, lsrBI: UInt8 = 0x10
    static let lsrTHRE: UInt8 = 0x20, lsrTEMT: UInt8 = 0x40, lsrIntAny: UInt8 = 0x1e
    static let mcrLoop: UInt8 = 0x10
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
        var mcr: UInt8 = 0
        var lsr: UInt8 = SerialPort.lsrTHRE | SerialPort.lsrTEMT
        var msr: UInt8 = SerialPort.msrDCD | SerialPort.msrDSR | SerialPort.msrCTS
        var scr: UInt8 = 0
        var thrPending = false
        var timeoutPending = false
        var recvFIFO: [UInt8] = []
        var triggerLevel = 1
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
    public static let isaIRQs: [UInt32] = [4, 3, 4, 3]

    /// Creates a UART that transmits to `backend` and interrupts through `irq`.
    public init(backend: any SerialBackend = NullSerialBackend(), irq: IRQ = .disconnected(), name: String = "serial") {
        let state = Mutex(State())
        self.state = state
        self.irq = irq
        self.backend = backend
        let owner = RegionOwner<SerialPort>()
        region = .io(name: name, size: 8, ops: owner.ops(read: SerialPort.read, write: SerialPort.write,
                                                         unbound: 0xff, valid: .bytes, implementation: .bytes))
        owner.set(self)
    }

    /// Maps the UART at `base` (default COM1, 0x3f8) in the I/O address space.
    public func map(into io: MemoryRegion, at base: UInt64 = SerialPort.com1Base) {
        io.addSubregion(region, at: base)
    }

    /// Queues host input (stdin, tests) for the guest; returns how many bytes were accepted
    /// (the rest overflowed the input queue). QEMU: `serial_receive1` behind chardev flow control.
    @discardableResult
    public func receive(_ bytes: [UInt8]) -> Int {
        state.withLock { s in
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
            switch offset & 7 {
            case 0:
                if s.lcr & SerialPort.lcrDLAB != 0 { return UInt8(truncatingIfNeeded: s.divider) }
                var value: UInt8
                if s.fifoEnabled {
                    value = s.recvFIFO.isEmpty ? 0 : s.recvFIFO.removeFirst()
                    if s.recvFIFO.isEmpty { s.lsr &= ~(SerialPort.lsrDR | SerialPort.lsrBI) }
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
            switch offset & 7 {
            case 0:
                if s.lcr & SerialPort.lcrDLAB != 0 {
                    s.divider = s.divider & 0xff00 | UInt16(value)
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

    /// One byte into the receiver. QEMU: `serial_receive1`.
    private func receiveByte(_ s: inout State, _ byte: UInt8) {
        if s.fifoEnabled {
            if s.recvFIFO.count >= SerialPort.fifoSize {
                s.lsr |= SerialPort.lsrOE
            } else {
                s.recvFIFO.append(byte)
            }
            // No character timer here: a FIFO holding less than the trigger level reports the
            // timeout interrupt at once.
            s.timeoutPending = s.recvFIFO.count < s.triggerLevel
        } else {
            if s.lsr & SerialPort.lsrDR != 0 { s.lsr |= SerialPort.lsrOE }
            s.rbr = byte
        }
        s.lsr |= SerialPort.lsrDR
    }

    /// Moves queued host input into the receiver while it has room (never in loopback, where
    /// the receiver hears only the transmitter). QEMU: `serial_can_receive`.
    private func pumpInput(_ s: inout State) {
        while s.inputHead < s.input.count && !s.loopback {
            let room = s.fifoEnabled ? s.recvFIFO.count < SerialPort.fifoSize : s.lsr & SerialPort.lsrDR == 0
            guard room else { break }
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

