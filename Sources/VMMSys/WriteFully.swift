import SystemPackage

/// Writes a whole buffer to `fd` (swift-system's `writeAll`: short writes completed, EINTR
/// retried); gives up silently on other errors (a closed terminal must not stop a guest that
/// prints). Returns whether all was written.
@discardableResult
public func writeFully(_ fd: FileDescriptor, _ bytes: [UInt8]) -> Bool {
    (try? fd.writeAll(bytes)) != nil
}

/// `writeFully` on a raw descriptor number (standard output is 1, standard error 2).
@discardableResult
public func writeFully(_ fd: Int32, _ bytes: [UInt8]) -> Bool {
    writeFully(FileDescriptor(rawValue: fd), bytes)
}
