/// One interrupt line from a device to an interrupt controller: the device sets its level and
/// the handler (installed by the machine — e.g. KVM_IRQ_LINE for a GSI — or a test recorder)
/// receives it. The handler is called on every `set`, even when the level does not change, as
/// QEMU's `qemu_set_irq()` does; level-triggered consumers de-duplicate themselves.
/// QEMU: qemu_irq (hw/core/irq.c).
public final class IRQ: Sendable {
    private let handler: @Sendable (Bool) -> Void

    /// Creates a line that delivers each level to `handler`.
    public init(_ handler: @escaping @Sendable (Bool) -> Void) {
        self.handler = handler
    }

    /// A line connected to nothing (levels are dropped).
    public static func disconnected() -> IRQ { IRQ { _ in } }

    /// Drives the line to `level`. QEMU: qemu_set_irq().
    public func set(_ level: Bool) { handler(level) }

    /// QEMU: qemu_irq_raise().
    public func raise() { handler(true) }

    /// QEMU: qemu_irq_lower().
    public func lower() { handler(false) }

    /// Raises then lowers the line (an edge). QEMU: qemu_irq_pulse().
    public func pulse() {
        handler(true)
        handler(false)
    }
}
