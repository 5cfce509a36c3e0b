/// An error reply: QEMU's error class and its human-readable description.
/// QEMU: qapi/error.json ErrorClass, qmp_error_response().
public struct QMPError: Error, Equatable, CustomStringConvertible {
    /// QEMU's error classes.
    public enum Class: String, Sendable {
        /// Every error without a class of its own. QEMU: `ERROR_CLASS_GENERIC_ERROR`.
        case genericError = "GenericError"
        /// No such command (or none before `qmp_capabilities`).
        /// QEMU: `ERROR_CLASS_COMMAND_NOT_FOUND`.
        case commandNotFound = "CommandNotFound"
        /// The device exists but is not active. QEMU: `ERROR_CLASS_DEVICE_NOT_ACTIVE`.
        case deviceNotActive = "DeviceNotActive"
        /// No device by that name. QEMU: `ERROR_CLASS_DEVICE_NOT_FOUND`.
        case deviceNotFound = "DeviceNotFound"
        /// KVM lacks a capability the command needs. QEMU: `ERROR_CLASS_KVM_MISSING_CAP`.
        case kvmMissingCap = "KVMMissingCap"
    }

    /// The reply's `class`.
    public var errorClass: Class
    /// The reply's `desc`: the message, worded as QEMU words it where QEMU has one.
    public var desc: String

    /// An error of `errorClass` saying `desc`. QEMU: `error_set()`.
    public init(_ errorClass: Class, _ desc: String) {
        self.errorClass = errorClass
        self.desc = desc
    }

    /// A GenericError saying `desc`. QEMU: `error_setg()`.
    public init(_ desc: String) { self.init(.genericError, desc) }

    /// `Class: desc`, for logs.
    public var description: String { "\(errorClass.rawValue): \(desc)" }

    /// `{"class": …, "desc": …}`.
    var json: JSONValue { .object([("class", .string(errorClass.rawValue)), ("desc", .string(desc))]) }
}
