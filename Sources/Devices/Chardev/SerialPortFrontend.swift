/// A 16550A as a chardev frontend: input goes to `SerialPort.receive`, while the port's input
/// queue has room. The UART cannot say when room frees up, so the chardev looks again on a
/// short timer after a refusal. QEMU: serial_can_receive1() / serial_receive1() behind the
/// CharBackend.
public final class SerialPortFrontend: ChardevFrontend {
    private weak let port: SerialPort?

    /// A frontend for `port`, held weakly (the machine owns the UART).
    public init(_ port: SerialPort) { self.port = port }

    /// Room left in the UART's input queue (0 once the port is gone). QEMU: serial_can_receive1().
    public func chardevCanReceive() -> Int {
        guard let port else { return 0 }
        return max(0, SerialPort.inputQueueLimit - port.pendingInput)
    }

    /// Queues `bytes` as received characters. QEMU: serial_receive1().
    public func chardevReceive(_ bytes: ArraySlice<UInt8>) {
        _ = port?.receive(Array(bytes))
    }

    /// The UART never calls `acceptInput()`: the chardev retries on its timer.
    public var callsAcceptInput: Bool { false }
}
