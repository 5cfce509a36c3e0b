/// What a character backend reports to the device using it. QEMU: QEMUChrEvent.
public enum ChardevEvent: Sendable, Equatable {
    /// The far side is there: a socket client connected, a pty's slave was opened; for
    /// backends that are always there (files, stdio, pipes), once when the device attaches.
    case opened
    /// The far side went away (a socket client disconnected).
    case closed
}

/// The device side of a chardev — a UART, a virtio console port, a monitor: where input
/// goes, with flow control, and where connection events go. The chardev calls these on its
/// I/O thread, never while a frontend's own call into the chardev (`write`) is under way.
/// QEMU: the CharBackend handlers (fd_can_read, fd_read, fd_event).
public protocol ChardevFrontend: AnyObject, Sendable {
    /// Bytes the frontend can take now. 0 stops reading until `Chardev.acceptInput()` (or, for
    /// a frontend that never calls it, a short retry timer). QEMU: IOCanReadHandler.
    func chardevCanReceive() -> Int
    /// Input, at most what `chardevCanReceive` allowed. QEMU: IOReadHandler.
    func chardevReceive(_ bytes: ArraySlice<UInt8>)
    /// A connection event. QEMU: IOEventHandler.
    func chardevEvent(_ event: ChardevEvent)
    /// Whether the frontend calls `Chardev.acceptInput()` when it has room again; if not,
    /// the chardev retries on a timer after a refusal.
    var callsAcceptInput: Bool { get }
}

extension ChardevFrontend {
    /// By default connection events are ignored.
    public func chardevEvent(_ event: ChardevEvent) {}
    /// By default the frontend says when it has room again (`Chardev.acceptInput()`).
    public var callsAcceptInput: Bool { true }
}
