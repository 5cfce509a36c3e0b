import SystemPackage
#if canImport(Glibc)
import Glibc
#endif

/// Writes a whole buffer to `fd` (swift-system's `writeAll`: short writes completed, EINTR
/// retried); gives up silently on other errors (a closed terminal must not stop a guest that
/// prints). Returns whether all was written.
@discardableResult
package func writeFully(_ fd: FileDescriptor, _ bytes: [UInt8]) -> Bool {
    (try? fd.writeAll(bytes)) != nil
}

/// `writeFully` on a raw descriptor number (standard output is 1, standard error 2).
@discardableResult
package func writeFully(_ fd: Int32, _ bytes: [UInt8]) -> Bool {
    writeFully(FileDescriptor(rawValue: fd), bytes)
}

/// Writes `text` to standard output with the C library's `write(2)` directly, retrying short
/// writes and EINTR. For what runs before anything else (`vmm -version`): swift-system's
/// generic `writeAll` makes the Swift runtime look up a protocol conformance, which scans
/// every conformance record in the binary and touches a megabyte or two of pages; this
/// does not (README: start-up figures).
package func writeStandardOutputDirectly(_ text: String) {
    writeDirectly(1, text)
}

/// `writeStandardOutputDirectly` for any descriptor (the start-up trace writes to 2).
package func writeDirectly(_ fd: Int32, _ text: String) {
    var text = text
    text.withUTF8 { bytes in
        var offset = 0
        while offset < bytes.count {
            // SAFETY: `bytes` is valid for `bytes.count` bytes for the closure's duration and
            // `offset < bytes.count`, so the range written stays inside it.
            let n = unsafe Glibc.write(fd, bytes.baseAddress! + offset, bytes.count - offset)
            if n > 0 { offset += n } else if n < 0 && errno == EINTR { continue } else { return }
        }
    }
}
