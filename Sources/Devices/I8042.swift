import Memory
import Synchronization

/// The i8042 keyboard controller with a PS/2 keyboard and mouse that answer commands but never
/// type or move: data port 0x60, status/command port 0x64, IRQ 1 (keyboard) and IRQ 12 (mouse).
/// Enough for firmware and an OS to find and set them up as on QEMU: the controller's self
/// test (0xaa → 0x55, which sets the status's system flag), interface tests, the command byte
/// (0x20/0x60), keyboard and mouse enable/disable, the output port (0xd0/0xd1), writes to
/// either output buffer (0xd2/0xd3) and to the mouse (0xd4); the keyboard's reset (ACK, 0xaa),
/// identify, scan-code set, LEDs, rate, enable/disable; the mouse's reset, identify, status,
/// resolution, sample rate and wrap mode. Replies wait in one 16-byte queue (further bytes are
/// dropped, as QEMU drops them when its queue is full); the status's output-buffer-full and
/// mouse bits follow its head; IRQ 1 or 12 is high while the head is the keyboard's or the
/// mouse's and the command byte enables that interrupt. A pulse command (0xf0-0xff) with bit 0
/// clear, or an output-port write with bit 0 clear, resets the machine — 0xfe is the reboot
/// path many small kernels use. The A20 gate is not modelled (A20 stays enabled).
///
/// Without firmware the controller starts as SeaBIOS leaves it (self-tested, command byte 0x61:
/// keyboard interrupt, translation, mouse disabled); with firmware as QEMU resets it (status
/// 0x18, command byte 0x03), for SeaBIOS to test and program.
/// QEMU: i8042 (hw/input/pckbd.c: kbd_write_command(), kbd_write_data(), kbd_update_irq()),
/// hw/input/ps2.c (ps2_write_keyboard(), ps2_write_mouse()).
public final class I8042: Resettable, Sendable {
    /// The data port (0x60): keyboard/mouse bytes and command arguments. QEMU: kbd_read_data(), kbd_write_data().
    public let dataRegion: MemoryRegion
    /// The status/command port (0x64). QEMU: kbd_read_status(), kbd_write_command().
    public let commandRegion: MemoryRegion

    /// Status bits. QEMU: KBD_STAT_*.
    static let statusOutputFull: UInt8 = 0x01, statusSystem: UInt8 = 0x04, statusCommand: UInt8 = 0x08
    static let statusUnlocked: UInt8 = 0x10, statusMouseData: UInt8 = 0x20
    /// Command byte bits. QEMU: KBD_MODE_*.
    static let modeKeyboardInterrupt: UInt8 = 0x01, modeMouseInterrupt: UInt8 = 0x02
    static let modeDisableKeyboard: UInt8 = 0x10, modeDisableMouse: UInt8 = 0x20, modeTranslate: UInt8 = 0x40
    static let queueSize = 16

    struct State {
        var status: UInt8
        var mode: UInt8
        var outport: UInt8 = 0xcf
        /// A controller command waiting for its data byte (0x60, 0xd1-0xd4).
        var controllerCommand: UInt8?
        var keyboardCommand: UInt8?
        var mouseCommand: UInt8?
        var queue: [(byte: UInt8, mouse: Bool)] = []
        var lastRead: UInt8 = 0
        var scanning = true
        var scanCodeSet: UInt8 = 2
        var mouseStatus: UInt8 = 0, mouseResolution: UInt8 = 0, mouseSampleRate: UInt8 = 0
        var mouseWrap = false
    }

    private let state: Mutex<State>
    private let resetLine: @Sendable () -> Void
    private let keyboardIRQ: IRQ
    private let mouseIRQ: IRQ
    private let firmware: Bool

    /// - Parameters:
    ///   - firmware: firmware runs and programs the controller (else it starts as SeaBIOS leaves it).
    ///   - reset: the machine reset the controller's reset line pulses.
    public init(firmware: Bool = false, keyboardIRQ: IRQ = .disconnected(), mouseIRQ: IRQ = .disconnected(),
                reset: @escaping @Sendable () -> Void) {
        self.firmware = firmware
        self.resetLine = reset
        self.keyboardIRQ = keyboardIRQ
        self.mouseIRQ = mouseIRQ
        state = Mutex(I8042.powerOn(firmware: firmware))
        let byteOnly = AccessConstraints(minAccessSize: 1, maxAccessSize: 1)
        let owner = RegionOwner<I8042>()
        dataRegion = .io(name: "i8042-data", size: 1, ops: owner.ops(read: I8042.readData, write: I8042.writeData, unbound: 0xff,
                                                                      valid: byteOnly, implementation: byteOnly))
        commandRegion = .io(name: "i8042-cmd", size: 1, ops: owner.ops(read: I8042.readStatus, write: I8042.writeCommand,
                                                                       unbound: 0xff, valid: byteOnly, implementation: byteOnly))
        owner.set(self)
    }

    static func powerOn(firmware: Bool) -> State {
        firmware ? State(status: statusCommand | statusUnlocked, mode: modeKeyboardInterrupt | modeMouseInterrupt)
                 : State(status: statusCommand | statusUnlocked | statusSystem, mode: modeKeyboardInterrupt | modeTranslate | modeDisableMouse)
    }

    /// Maps the data port at 0x60 and the command port at 0x64 in `io`. QEMU: i8042_realizefn().
    public func map(into io: MemoryRegion) {
        io.addSubregion(dataRegion, at: 0x60)
        io.addSubregion(commandRegion, at: 0x64)
    }

    /// A system reset: the controller and both devices to their reset state. QEMU: kbd_reset(),
    /// ps2_kbd_reset(), ps2_mouse_reset().
    public func reset() {
        update { $0 = I8042.powerOn(firmware: firmware) }
    }

    // MARK: Guest interface

    private func readStatus(_ offset: UInt64, _ size: Int) -> UInt64 {
        state.withLock { s in
            var v = s.status & ~(Self.statusOutputFull | Self.statusMouseData)
            if let head = s.queue.first { v |= Self.statusOutputFull | (head.mouse ? Self.statusMouseData : 0) }
            return UInt64(v)
        }
    }

    private func readData(_ offset: UInt64, _ size: Int) -> UInt64 {
        var value: UInt8 = 0
        update { s in
            if !s.queue.isEmpty { s.lastRead = s.queue.removeFirst().byte }
            value = s.lastRead
        }
        return UInt64(value)
    }

    private func writeCommand(_ offset: UInt64, _ value64: UInt64, _ size: Int) {
        let command = UInt8(truncatingIfNeeded: value64)
        // Commands 0xf0-0xff pulse output-port bits 3-0; bit 0 low pulses the reset line.
        if command & 0xf0 == 0xf0 {
            if command & 1 == 0 { resetLine() }
            return
        }
        update { s in
            switch command {
            case 0x20: Self.queue(&s, s.mode, mouse: false)
            case 0x60, 0xd1, 0xd2, 0xd3, 0xd4: s.controllerCommand = command
            case 0xa7: s.mode |= Self.modeDisableMouse
            case 0xa8: s.mode &= ~Self.modeDisableMouse
            case 0xa9, 0xab, 0xc0, 0xe0: Self.queue(&s, 0x00, mouse: false)   // tests pass; input port, test inputs 0
            case 0xaa:
                s.status |= Self.statusSystem
                Self.queue(&s, 0x55, mouse: false)
            case 0xad: s.mode |= Self.modeDisableKeyboard
            case 0xae: s.mode &= ~Self.modeDisableKeyboard
            case 0xd0: Self.queue(&s, s.outport, mouse: false)
            default: break
            }
        }
    }

    private func writeData(_ offset: UInt64, _ value64: UInt64, _ size: Int) {
        let value = UInt8(truncatingIfNeeded: value64)
        var pulseReset = false
        update { s in
            let command = s.controllerCommand
            s.controllerCommand = nil
            switch command {
            case 0x60: s.mode = value
            case 0xd1:
                s.outport = value
                pulseReset = value & 1 == 0
            case 0xd2: Self.queue(&s, value, mouse: false)
            case 0xd3: Self.queue(&s, value, mouse: true)
            case 0xd4: Self.mouseWrite(&s, value)
            default:
                Self.keyboardWrite(&s, value)
                s.mode &= ~Self.modeDisableKeyboard   // data to the keyboard re-enables it
            }
        }
        if pulseReset { resetLine() }
    }

    // MARK: Devices (lock held)

    private static func queue(_ s: inout State, _ bytes: UInt8..., mouse: Bool) {
        for b in bytes where s.queue.count < queueSize { s.queue.append((b, mouse)) }
    }

    /// QEMU: ps2_write_keyboard().
    private static func keyboardWrite(_ s: inout State, _ v: UInt8) {
        let ack: UInt8 = 0xfa, resend: UInt8 = 0xfe
        if let pending = s.keyboardCommand {
            s.keyboardCommand = nil
            switch pending {
            case 0xf0:                                                   // scan-code set
                if v == 0 {
                    let translated: [UInt8] = [0xff, 0x43, 0x41, 0x3f]
                    queue(&s, ack, s.mode & modeTranslate != 0 ? translated[Int(s.scanCodeSet & 3)] : s.scanCodeSet, mouse: false)
                } else if (1...3).contains(v) {
                    s.scanCodeSet = v
                    queue(&s, ack, mouse: false)
                } else {
                    queue(&s, resend, mouse: false)
                }
            default: queue(&s, ack, mouse: false)                        // LEDs, rate, make/break
            }
            return
        }
        switch v {
        case 0x00: queue(&s, ack, mouse: false)
        case 0xf2: queue(&s, ack, 0xab, s.mode & modeTranslate != 0 ? 0x41 : 0x83, mouse: false)   // MF2 keyboard
        case 0xee: queue(&s, 0xee, mouse: false)                             // echo
        case 0xf4:
            s.scanning = true
            queue(&s, ack, mouse: false)
        case 0xf0, 0xed, 0xf3, 0xfb:
            s.keyboardCommand = v
            queue(&s, ack, mouse: false)
        case 0xf5, 0xf6:                                                     // defaults; F5 also stops scanning
            s.queue.removeAll { !$0.mouse }
            s.scanCodeSet = 2
            s.scanning = v == 0xf6
            queue(&s, ack, mouse: false)
        case 0xff:                                                           // reset: ACK, power-on reset passed
            s.queue.removeAll { !$0.mouse }
            s.scanCodeSet = 2
            s.scanning = true
            queue(&s, ack, 0xaa, mouse: false)
        case 0xfa: queue(&s, ack, mouse: false)
        default: queue(&s, resend, mouse: false)
        }
    }

    /// QEMU: ps2_write_mouse().
    private static func mouseWrite(_ s: inout State, _ v: UInt8) {
        let ack: UInt8 = 0xfa
        if let pending = s.mouseCommand {
            s.mouseCommand = nil
            if pending == 0xf3 { s.mouseSampleRate = v } else { s.mouseResolution = v }
            queue(&s, ack, mouse: true)
            return
        }
        if s.mouseWrap && v != 0xff {
            if v == 0xec { s.mouseWrap = false; queue(&s, ack, mouse: true) } else { queue(&s, v, mouse: true) }
            return
        }
        switch v {
        case 0xe6: s.mouseStatus &= ~0x10; queue(&s, ack, mouse: true)         // scaling 1:1
        case 0xe7: s.mouseStatus |= 0x10; queue(&s, ack, mouse: true)          // scaling 2:1
        case 0xea: s.mouseStatus &= ~0x40; queue(&s, ack, mouse: true)         // stream mode
        case 0xee: s.mouseWrap = true; queue(&s, ack, mouse: true)
        case 0xf0: s.mouseStatus |= 0x40; queue(&s, ack, mouse: true)          // remote mode
        case 0xf2: queue(&s, ack, 0x00, mouse: true)                            // plain PS/2 mouse
        case 0xe8, 0xf3:
            s.mouseCommand = v
            queue(&s, ack, mouse: true)
        case 0xe9: queue(&s, ack, s.mouseStatus, s.mouseResolution, s.mouseSampleRate, mouse: true)
        case 0xeb: queue(&s, ack, 0x08, 0x00, 0x00, mouse: true)                // poll: no motion
        case 0xf4: s.mouseStatus |= 0x20; queue(&s, ack, mouse: true)
        case 0xf5: s.mouseStatus &= ~0x20; queue(&s, ack, mouse: true)
        case 0xf6:
            (s.mouseSampleRate, s.mouseResolution, s.mouseStatus) = (100, 2, 0)
            queue(&s, ack, mouse: true)
        case 0xff:
            (s.mouseSampleRate, s.mouseResolution, s.mouseStatus) = (100, 2, 0)
            s.queue.removeAll { $0.mouse }
            queue(&s, ack, 0xaa, 0x00, mouse: true)
        default: break
        }
    }

    /// Applies `change` and drives IRQ 1 and 12 from the queue's head and the command byte.
    /// QEMU: kbd_update_irq().
    private func update(_ change: (inout State) -> Void) {
        let (keyboard, mouse) = state.withLock { s -> (Bool, Bool) in
            change(&s)
            guard let head = s.queue.first else { return (false, false) }
            return (!head.mouse && s.mode & Self.modeKeyboardInterrupt != 0, head.mouse && s.mode & Self.modeMouseInterrupt != 0)
        }
        keyboardIRQ.set(keyboard)
        mouseIRQ.set(mouse)
    }
}
