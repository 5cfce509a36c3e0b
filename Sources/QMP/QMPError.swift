/// An error reply: QEMU's error class and its human-readable description.
/// QEMU: qapi/error.json ErrorClass, qmp_error_response().
public struct QMPError: Error, Equatable, CustomStringConvertible {
    /// QEMU's error classes.
    public enum Class: String, Sendable {
        case genericError = "GenericError"
        case commandNotFound = "CommandNotFound"
        case deviceNotActive = "DeviceNotActive"
        case deviceNotFound = "DeviceNotFound"
        case kvmMissingCap = "KVMMissingCap"
    }

    public var errorClass: Class
    public var desc: String

    public init(_ errorClass: Class, _ desc: String) {
        self.errorClass = errorClass
        self.desc = desc
    }

    /// A GenericError.
    public init(_ desc: String) { self.init(.genericError, desc) }

    public var description: String { "\(errorClass.rawValue): \(desc)" }

    /// `{"class": …, "desc": …}`.
    var json: JSONValue { .object([("class", .string(errorClass.rawValue)), ("desc", .string(desc))]) }
}
