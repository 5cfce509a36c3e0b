internal import CVirtIO
import Devices
import Logging
import Memory
import Synchronization
import VMMSys

/// The virtio console device (virtio-serial): up to `maxPorts` ports, each a pair of queues
/// between the guest and a chardev — consoles (`virtconsole`) and named ports
/// (`virtserialport`) — with the MULTIPORT control protocol (queues 2 and 3) telling the
/// driver which ports exist, their names, which is a console, and when the host side opens or
/// closes. Port 0's queues are 0 and 1; port n ≥ 1 uses 2(n+1) and 2(n+1)+1.
///
/// Host → guest data is read from the chardev only as fast as the guest's receive buffers take
/// it (up to 4 KiB a time), so nothing is lost. Guest → host data goes to the chardev as it
/// takes it: a console drops what its chardev refuses (QEMU does the same: the Linux hvc driver
/// writes with spinlocks held), a named port stops (is throttled) until the chardev can take
/// more, keeping the chain. A virtconsole is always connected on the host side; a
/// virtserialport follows its chardev (a socket client connecting and leaving).
///
/// The guest is hostile: control messages shorter than their 8 bytes are ignored, unknown
/// port ids logged (rate-limited), chains read only as far as needed.
/// QEMU: hw/char/virtio-serial-bus.c, hw/char/virtio-console.c.
public final class VirtIOSerial: VirtIODevice {
    /// Each port queue's size, and each control queue's. QEMU: virtio_serial_device_realize() (128
    /// and 32).
    public static let portQueueSize: UInt16 = 128, controlQueueSize: UInt16 = 32
    /// QEMU's `max_ports` default.
    public static let defaultMaxPorts = 31
    /// Each port takes two queues; one pair is the control queues. QEMU: VIRTIO_QUEUE_MAX / 2 - 1.
    public static let maxSupportedPorts = 1024 / 2 - 1
    /// VIRTIO_CONSOLE_F_MULTIPORT, VIRTIO_CONSOLE_F_EMERG_WRITE.
    static let featureMultiport = UInt64(1) << VIRTIO_CONSOLE_F_MULTIPORT
    static let featureEmergencyWrite = UInt64(1) << VIRTIO_CONSOLE_F_EMERG_WRITE
    /// The control queues' indices (virtio 1.x §5.3.2: receiveq 2 and transmitq 3 with MULTIPORT).
    static let controlIn = 2, controlOut = 3
    /// struct virtio_console_control {le32 id, le16 event, le16 value}: one control message.
    static let controlMessageSize = CVIRTIO_CONSOLE_CONTROL_SIZE

    /// Control events (virtio 1.x §5.3.6.2), VIRTIO_CONSOLE_* in <linux/virtio_console.h>.
    enum Event: CaseIterable {
        case deviceReady, deviceAdd, deviceRemove, portReady, consolePort, resize, portOpen, portName

        /// The event's number on the wire.
        var rawValue: UInt16 {
            switch self {
            case .deviceReady: UInt16(VIRTIO_CONSOLE_DEVICE_READY)
            case .deviceAdd: UInt16(VIRTIO_CONSOLE_PORT_ADD)
            case .deviceRemove: UInt16(VIRTIO_CONSOLE_PORT_REMOVE)
            case .portReady: UInt16(VIRTIO_CONSOLE_PORT_READY)
            case .consolePort: UInt16(VIRTIO_CONSOLE_CONSOLE_PORT)
            case .resize: UInt16(VIRTIO_CONSOLE_RESIZE)
            case .portOpen: UInt16(VIRTIO_CONSOLE_PORT_OPEN)
            case .portName: UInt16(VIRTIO_CONSOLE_PORT_NAME)
            }
        }
    }

    /// Ports the device can hold (`max_ports`); 1 means no MULTIPORT.
    public let maxPorts: Int
    /// Whether VIRTIO_CONSOLE_F_EMERG_WRITE is offered (`emergency-write`).
    public let emergencyWrite: Bool
    let logger: Logger
    private let portList = Mutex<[VirtIOSerialPort]>([])
    private let multiport = Atomic<Bool>(false)
    private let transportBox = Mutex<WeakTransport>(WeakTransport())
    let guestErrors = RateLimitedLog()
    /// Reused to copy guest output to a chardev (the device lock serializes its users).
    let scratch = Mutex([UInt8](repeating: 0, count: 4096))

    /// - Parameters:
    ///   - maxPorts: QEMU's `max_ports` (1 means no MULTIPORT).
    ///   - emergencyWrite: offer VIRTIO_CONSOLE_F_EMERG_WRITE (QEMU's `emergency-write`).
    public init(maxPorts: Int = VirtIOSerial.defaultMaxPorts, emergencyWrite: Bool = true,
                logger: Logger = Logger(label: "vmm.virtio-serial")) throws(VirtIOError) {
        guard maxPorts >= 1 else { throw VirtIOError("Maximum number of serial ports not specified") }
        guard maxPorts <= Self.maxSupportedPorts else { throw VirtIOError("maximum ports supported: \(Self.maxSupportedPorts)") }
        self.maxPorts = maxPorts
        self.emergencyWrite = emergencyWrite
        self.logger = logger
    }

    /// Adds a port before the machine runs. `nr` nil picks 0 for the first console, else the
    /// lowest free id from 1 (port 0 is reserved for a console). QEMU: virtser_port_device_realize().
    public func addPort(nr: UInt32?, name: String?, console: Bool, chardev: Chardev?) throws(VirtIOError) -> VirtIOSerialPort {
        try portList.withLock { (ports: inout [VirtIOSerialPort]) throws(VirtIOError) -> VirtIOSerialPort in
            if let nr, ports.contains(where: { $0.id == nr }) {
                throw VirtIOError("virtio-serial-bus: A port already exists at id \(nr)")
            }
            if let name, ports.contains(where: { $0.name == name }) {
                throw VirtIOError("virtio-serial-bus: A port already exists by name \(name)")
            }
            if nr == 0 && !console {
                throw VirtIOError("Port number 0 on virtio-serial devices reserved for virtconsole devices for backward compatibility.")
            }
            let id: UInt32
            if let nr {
                id = nr
            } else if console && !ports.contains(where: { $0.id == 0 }) {
                id = 0
            } else {
                guard let free = (1..<UInt32(maxPorts)).first(where: { i in !ports.contains { $0.id == i } }) else {
                    throw VirtIOError("virtio-serial-bus: Maximum port limit for this device reached")
                }
                id = free
            }
            guard id < UInt32(maxPorts) else {
                throw VirtIOError("virtio-serial-bus: Out-of-range port id specified, max. allowed: \(maxPorts - 1)")
            }
            let port = VirtIOSerialPort(id: id, name: name, console: console, chardev: chardev, serial: self)
            ports.append(port)
            return port
        }
    }

    /// The ports added so far, in order of addition.
    public var ports: [VirtIOSerialPort] { portList.withLock { $0 } }
    var transport: (any VirtIOTransport)? { transportBox.withLock { $0.transport } }

    // MARK: VirtIODevice

    /// VIRTIO_ID_CONSOLE.
    public var deviceType: UInt16 { UInt16(VIRTIO_ID_CONSOLE) }
    /// PCI_CLASS_COMMUNICATION_OTHER.
    public var pciClassCode: UInt32 { 0x07_80_00 }
    /// MULTIPORT when there can be more than one port; EMERG_WRITE unless turned off.
    /// QEMU: get_features().
    public var features: UInt64 { (maxPorts > 1 ? Self.featureMultiport : 0) | (emergencyWrite ? Self.featureEmergencyWrite : 0) }
    /// Port 0's pair, the control pair, then a pair per further port. QEMU:
    /// virtio_serial_device_realize().
    public var queueSizes: [UInt16] {
        [Self.portQueueSize, Self.portQueueSize, Self.controlQueueSize, Self.controlQueueSize]
            + Array(repeating: Self.portQueueSize, count: 2 * (maxPorts - 1))
    }

    /// Keeps the transport (weakly) to answer control messages and serve ports from chardev events.
    public func attach(_ transport: any VirtIOTransport) throws {
        transportBox.withLock { $0.transport = transport }
    }

    /// struct virtio_console_config: cols and rows (both 0), max_nr_ports, and emerg_wr with
    /// EMERG_WRITE (offsets from <linux/virtio_console.h>); 0xff beyond. QEMU: get_config().
    public func readConfig(offset: UInt64, size: Int) -> UInt64 {
        let configSize = UInt64(emergencyWrite ? CVIRTIO_CONSOLE_CFG_SIZE : CVIRTIO_CONSOLE_CFG_EMERG_WR)
        guard size >= 1, size <= 8, offset <= configSize, UInt64(size) <= configSize - offset else {
            return size >= 8 ? UInt64.max : (UInt64(1) << (8 * UInt64(max(size, 0)))) &- 1
        }
        var config = [UInt8](repeating: 0, count: CVIRTIO_CONSOLE_CFG_SIZE)
        for i in 0..<4 { config[CVIRTIO_CONSOLE_CFG_MAX_NR_PORTS + i] = UInt8(truncatingIfNeeded: maxPorts >> (8 * i)) }
        var v: UInt64 = 0
        for i in 0..<size { v |= UInt64(config[Int(offset) + i]) << (8 * UInt64(i)) }
        return v
    }

    /// An emergency write (a byte at emerg_wr) goes to the first host-connected console.
    /// QEMU: set_config().
    public func writeConfig(offset: UInt64, value: UInt64, size: Int) {
        guard emergencyWrite, offset == UInt64(CVIRTIO_CONSOLE_CFG_EMERG_WR), value != 0 else { return }
        guard let port = ports.first(where: { $0.isConsole && $0.hostConnected }) else { return }
        _ = port.chardev?.writeSome([UInt8(truncatingIfNeeded: value)][...])
    }

    /// Records whether the driver took MULTIPORT (the control protocol is then in use).
    public func featuresNegotiated(_ features: UInt64) {
        multiport.store(features & Self.featureMultiport != 0, ordering: .relaxed)
    }

    var usesMultiport: Bool { multiport.load(ordering: .relaxed) }

    /// QEMU: set_status() — a driver without MULTIPORT cannot say it opened port 0, so port 0
    /// counts as open once the driver is running; a status without DRIVER_OK closes every port.
    public func statusChanged(_ status: UInt8) {
        if status & UInt8(VIRTIO_CONFIG_S_DRIVER_OK) != 0 {
            if !usesMultiport, let port0 = ports.first(where: { $0.id == 0 }) {
                port0.setGuestConnected(true)
            }
        } else {
            guestReset()
        }
    }

    /// MULTIPORT off, every port closed on the guest side. QEMU: vser_reset() → guest_reset().
    public func reset() {
        multiport.store(false, ordering: .relaxed)
        guestReset()
    }

    /// QEMU: guest_reset().
    private func guestReset() {
        for port in ports { port.guestReset() }
    }

    // MARK: Queues

    func inputQueue(_ id: UInt32) -> Int { id == 0 ? 0 : 2 * (Int(id) + 1) }

    /// The port and direction queue `index` belongs to.
    func port(forQueue index: Int) -> (port: VirtIOSerialPort, input: Bool)? {
        guard index != Self.controlIn, index != Self.controlOut else { return nil }
        let id = index < 2 ? 0 : UInt32(index / 2 - 1)
        guard let port = ports.first(where: { $0.id == id }) else { return nil }
        return (port, index % 2 == 0)
    }

    /// Serves queue `index`: control messages, a port's transmit queue (to its chardev), or, for a
    /// receive queue, lets the chardev read again. QEMU: control_out(), handle_output(),
    /// handle_input().
    public func process(queue index: Int, _ queue: VirtQueue, memory: GuestMemory,
                        budget: inout VirtQueueBudget) throws(VirtQueueError) -> VirtQueueProgress {
        if index == Self.controlOut { return try controlOut(queue, memory, &budget) }
        if index == Self.controlIn { return VirtQueueProgress() }         // QEMU: control_in() does nothing
        guard let (port, input) = port(forQueue: index) else {
            // A queue with no port: whatever the guest sends there is discarded.
            return isInputQueue(index) ? VirtQueueProgress() : try discard(queue, memory, &budget)
        }
        if input {
            // The guest added receive buffers: let the chardev read again. QEMU: handle_input()
            // → guest_writable() → qemu_chr_fe_accept_input().
            if port.guestConnected && port.hostConnected { port.chardev?.acceptInput() }
            return VirtQueueProgress()
        }
        guard port.hostConnected else { return try discard(queue, memory, &budget) }
        return try port.flush(queue, memory, &budget)
    }

    private func isInputQueue(_ index: Int) -> Bool { index < 2 ? index == 0 : index % 2 == 0 }

    /// Returns every chain unread. QEMU: discard_vq_data().
    func discard(_ queue: VirtQueue, _ memory: GuestMemory, _ budget: inout VirtQueueBudget) throws(VirtQueueError) -> VirtQueueProgress {
        var progress = VirtQueueProgress()
        var chain = DescriptorChain()
        while !budget.isExhausted, try queue.pop(memory, into: &chain) {
            budget.charge(bytes: 0)
            if try queue.push(head: chain.head, length: 0, memory) { progress.interrupt = true }
        }
        return progress
    }

    /// Guest → host control messages (struct virtio_console_control, 8 bytes).
    /// QEMU: control_out() → handle_control_message().
    private func controlOut(_ queue: VirtQueue, _ memory: GuestMemory, _ budget: inout VirtQueueBudget) throws(VirtQueueError) -> VirtQueueProgress {
        var progress = VirtQueueProgress()
        var chain = DescriptorChain()
        while !budget.isExhausted, try queue.pop(memory, into: &chain) {
            let size = Self.controlMessageSize
            var message = [UInt8](repeating: 0, count: size)
            var got = 0
            for b in chain.buffers.prefix(chain.readableCount) where got < size {
                let n = min(Int(min(UInt64(b.length), UInt64(size))), size - got)
                guard memory.readDirect(at: b.address, count: n, into: &message, at: got) else {
                    throw .bogusBuffer(address: b.address, length: b.length)
                }
                got += n
            }
            if got == size { try handleControl(message, memory) }
            budget.charge(bytes: got)
            if try queue.push(head: chain.head, length: 0, memory) { progress.interrupt = true }
        }
        return progress
    }

    /// One whole control message (`controlMessageSize` bytes). QEMU: handle_control_message().
    private func handleControl(_ m: [UInt8], _ memory: GuestMemory) throws(VirtQueueError) {
        func le(_ at: Int, _ n: Int) -> UInt32 { (0..<n).reduce(0) { $0 | UInt32(m[at + $1]) << (8 * UInt32($1)) } }
        let id = le(CVIRTIO_CONSOLE_CONTROL_ID, 4)
        let event = UInt16(truncatingIfNeeded: le(CVIRTIO_CONSOLE_CONTROL_EVENT, 2))
        let value = UInt16(truncatingIfNeeded: le(CVIRTIO_CONSOLE_CONTROL_VALUE, 2))
        if event == Event.deviceReady.rawValue {
            guard value != 0 else {
                guestErrors.log({ logger.warning("\($0)") }) { "virtio-serial-bus: Guest failure in adding device" }
                return
            }
            for port in ports { try sendControl(port.id, .deviceAdd, 1, memory) }
            return
        }
        guard let port = ports.first(where: { $0.id == id }) else {
            guestErrors.log({ logger.warning("\($0)") }) { "virtio-serial-bus: Unexpected port id \(id)" }
            return
        }
        switch event {
        case Event.portReady.rawValue:
            guard value != 0 else {
                guestErrors.log({ logger.warning("\($0)") }) { "virtio-serial-bus: Guest failure in adding port \(id)" }
                return
            }
            if port.isConsole { try sendControl(id, .consolePort, 1, memory) }
            if let name = port.name { try sendControl(id, .portName, 1, memory, extra: Array(name.utf8) + [0]) }
            if port.hostConnected { try sendControl(id, .portOpen, 1, memory) }
        case Event.portOpen.rawValue:
            port.setGuestConnected(value != 0)
        default:
            break
        }
    }

    /// One host → guest control message on the control receive queue, if the driver left a
    /// buffer (else it is lost, as in QEMU). Called with the device lock held.
    /// QEMU: send_control_event() / send_control_msg().
    func sendControl(_ id: UInt32, _ event: Event, _ value: UInt16, _ memory: GuestMemory, extra: [UInt8] = []) throws(VirtQueueError) {
        guard let transport, let queue = transport.queue(Self.controlIn), queue.isReady else { return }
        var message = [UInt8](repeating: 0, count: Self.controlMessageSize) + extra
        func put(_ v: UInt32, _ at: Int, _ n: Int) { for i in 0..<n { message[at + i] = UInt8(truncatingIfNeeded: v >> (8 * UInt32(i))) } }
        put(id, CVIRTIO_CONSOLE_CONTROL_ID, 4)
        put(UInt32(event.rawValue), CVIRTIO_CONSOLE_CONTROL_EVENT, 2)
        put(UInt32(value), CVIRTIO_CONSOLE_CONTROL_VALUE, 2)
        var chain = DescriptorChain()
        guard try queue.pop(memory, into: &chain) else { return }
        _ = try Self.scatter(message[...], chain, memory)
        if try queue.push(head: chain.head, length: UInt32(message.count), memory) { transport.notifyQueue(Self.controlIn) }
    }

    /// The same, from outside the device lock (a chardev event on the I/O thread).
    func sendControlUnlocked(_ id: UInt32, _ event: Event, _ value: UInt16) {
        _ = transport?.withQueue(Self.controlIn) { (_, memory) throws(VirtQueueError) in
            try sendControl(id, event, value, memory)
            return ((), false)
        }
    }

    /// Writes `bytes` into the chain's writable buffers; returns how many fit.
    static func scatter(_ bytes: ArraySlice<UInt8>, _ chain: DescriptorChain, _ memory: GuestMemory) throws(VirtQueueError) -> Int {
        var done = bytes.startIndex
        for b in chain.buffers[chain.readableCount...] where done < bytes.endIndex {
            let n = min(Int(b.length), bytes.endIndex - done)
            guard memory.writeDirect(bytes[done..<(done + n)], at: b.address) else { throw .bogusBuffer(address: b.address, length: b.length) }
            done += n
        }
        return done - bytes.startIndex
    }
}
