import Devices
import Memory
import Synchronization

/// One port of a virtio-serial device: a chardev frontend on the host side, a pair of queues
/// on the guest side. QEMU: VirtIOSerialPort + VirtConsole (hw/char/virtio-console.c).
public final class VirtIOSerialPort: ChardevFrontend {
    /// The port number the driver knows it by (`nr=`).
    public let id: UInt32
    /// `name=` (told to the guest with PORT_NAME).
    public let name: String?
    /// A `virtconsole` (hvc in Linux) rather than a `virtserialport`.
    public let isConsole: Bool
    /// The host side (`chardev=`); nil: output is dropped and nothing comes in.
    public let chardev: Chardev?
    private weak let serial: VirtIOSerial?

    struct State {
        var guestConnected = false
        var hostConnected = false
        /// The chardev would not take more: output stops until it can.
        var throttled = false
        /// A transmit chain not fully written: the chain, the buffer and the offset reached.
        var pending: (chain: DescriptorChain, buffer: Int, offset: UInt64)?
    }

    private let state = Mutex(State())

    init(id: UInt32, name: String?, console: Bool, chardev: Chardev?, serial: VirtIOSerial) {
        self.id = id
        self.name = name
        isConsole = console
        self.chardev = chardev
        self.serial = serial
        // A console with a chardev is always open on the host side; a named port follows its
        // chardev's open/close events. QEMU: virtconsole_realize().
        if console && chardev != nil { state.withLock { $0.hostConnected = true } }
    }

    /// The driver opened the port (PORT_OPEN 1; port 0 without MULTIPORT once the driver runs).
    public var guestConnected: Bool { state.withLock { $0.guestConnected } }
    /// The host side is open: always for a console with a chardev, else while its chardev is
    /// connected.
    public var hostConnected: Bool { state.withLock { $0.hostConnected } }
    /// Guest output is held because the chardev would not take more.
    public var isThrottled: Bool { state.withLock { $0.throttled } }

    func setGuestConnected(_ on: Bool) {
        let (changed, host) = state.withLock { s -> (Bool, Bool) in
            defer { s.guestConnected = on }
            return (s.guestConnected != on, s.hostConnected)
        }
        if changed && on && host { chardev?.acceptInput() }
    }

    /// QEMU: guest_reset() for one port.
    func guestReset() {
        state.withLock { s in
            s.pending = nil
            s.throttled = false
            s.guestConnected = false
        }
    }

    // MARK: ChardevFrontend (the chardev's I/O thread, outside the device lock)

    /// What the guest's receive buffers hold, up to 4 KiB. QEMU: virtio_serial_guest_ready().
    public func chardevCanReceive() -> Int {
        guard let serial, let transport = serial.transport else { return 0 }
        let multiport = serial.usesMultiport
        return transport.withQueue(serial.inputQueue(id)) { (queue, memory) throws(VirtQueueError) -> (result: Int, interrupt: Bool) in
            if try queue.isEmpty(memory) { return (0, false) }
            if multiport && !guestConnected { return (0, false) }
            return (Int(try queue.availableWritableBytes(upTo: 4096, memory)), false)
        } ?? 0
    }

    /// Host bytes into the guest's receive buffers. QEMU: virtio_serial_write() → write_to_port().
    public func chardevReceive(_ bytes: ArraySlice<UInt8>) {
        guard let serial, let transport = serial.transport, hostConnected, guestConnected else { return }
        _ = transport.withQueue(serial.inputQueue(id)) { (queue, memory) throws(VirtQueueError) -> (result: Int, interrupt: Bool) in
            var offset = bytes.startIndex
            var interrupt = false
            var chain = DescriptorChain()
            while offset < bytes.endIndex, try queue.pop(memory, into: &chain) {
                let n = try VirtIOSerial.scatter(bytes[offset...], chain, memory)
                offset += n
                if try queue.push(head: chain.head, length: UInt32(n), memory) { interrupt = true }
            }
            return (offset - bytes.startIndex, interrupt)
        }
    }

    /// A named port opens and closes with its chardev (a socket client coming and going);
    /// the guest hears PORT_OPEN 1/0. QEMU: chr_event() → virtio_serial_open()/close().
    public func chardevEvent(_ event: ChardevEvent) {
        guard !isConsole, let serial else { return }
        switch event {
        case .opened:
            let wasOpen = state.withLock { s -> Bool in
                defer { s.hostConnected = true }
                return s.hostConnected
            }
            guard !wasOpen else { return }
            serial.sendControlUnlocked(id, .portOpen, 1)
            if guestConnected { chardev?.acceptInput() }
        case .closed:
            state.withLock { s in
                s.hostConnected = false
                s.throttled = false
                s.pending = nil
            }
            // Discard what the guest queued for the host, then tell it. QEMU: virtio_serial_close().
            if let transport = serial.transport {
                _ = transport.serve(queue: serial.inputQueue(id) + 1)
            }
            serial.sendControlUnlocked(id, .portOpen, 0)
        }
    }

    // MARK: Guest → host (the device lock held)

    /// Writes the guest's chains to the chardev. A console drops what the chardev refuses;
    /// a named port keeps the rest and stops until the chardev is writable.
    /// QEMU: do_flush_queued_data() with virtio-console's flush_buf().
    func flush(_ queue: VirtQueue, _ memory: GuestMemory, _ budget: inout VirtQueueBudget) throws(VirtQueueError) -> VirtQueueProgress {
        var progress = VirtQueueProgress()
        guard let serial else { return progress }
        while !budget.isExhausted {
            var work: (chain: DescriptorChain, buffer: Int, offset: UInt64)
            if let pending = state.withLock({ s -> (chain: DescriptorChain, buffer: Int, offset: UInt64)? in
                guard !s.throttled else { return nil }
                defer { s.pending = nil }
                return s.pending
            }) {
                work = pending
            } else {
                if isThrottled { break }
                var chain = DescriptorChain()
                guard try queue.pop(memory, into: &chain) else { break }
                work = (chain, 0, 0)
            }
            var throttled = false
            var moved = 0
            while work.buffer < work.chain.readableCount {
                let b = work.chain.buffers[work.buffer]
                while work.offset < UInt64(b.length) {
                    let n = Int(min(UInt64(b.length) - work.offset, 4096))
                    let written = try serial.scratch.withLock { (scratch: inout [UInt8]) throws(VirtQueueError) -> Int in
                        guard memory.readDirect(at: b.address + work.offset, count: n, into: &scratch, at: 0) else {
                            throw .bogusBuffer(address: b.address, length: b.length)
                        }
                        // No chardev: the bytes go nowhere (QEMU: flush_buf() without a backend).
                        guard let chardev else { return n }
                        return chardev.writeSome(scratch[0..<n]) ?? n
                    }
                    moved += written
                    if written < n && !isConsole {
                        work.offset += UInt64(written)
                        throttled = true
                        break
                    }
                    // A console drops what was refused and goes on.
                    work.offset += UInt64(n)
                }
                if throttled { break }
                work.buffer += 1
                work.offset = 0
            }
            budget.charge(bytes: moved)
            if throttled {
                state.withLock { s in
                    s.pending = work
                    s.throttled = true
                }
                let index = serial.inputQueue(id) + 1
                chardev?.whenWritable { [weak self, weak serial] in
                    self?.state.withLock { $0.throttled = false }
                    _ = serial?.transport?.serve(queue: index)
                }
                break
            }
            if try queue.push(head: work.chain.head, length: 0, memory) { progress.interrupt = true }
        }
        return progress
    }
}
