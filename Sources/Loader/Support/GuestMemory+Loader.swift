import Memory

/// Guest writes made by loaders, with guest-memory failures reported against the file
/// being loaded rather than as a bare address.
extension GuestMemory {
    /// Writes `bytes` at `address`; a failure names `subject` and `what` was being written.
    func write(_ bytes: some Collection<UInt8>, at address: UInt64, for subject: String, _ what: String) throws(LoaderError) {
        do {
            try write(bytes, at: address)
        } catch {
            throw LoaderError(subject, "cannot write \(what) to guest memory: \(error)")
        }
    }

    /// Zeroes `[address, address + count)` in bounded chunks, so a large BSS does not need a
    /// buffer of its full size.
    func zero(at address: UInt64, count: UInt64, for subject: String, _ what: String) throws(LoaderError) {
        let chunk: UInt64 = 1 << 20
        let zeros = [UInt8](repeating: 0, count: Int(min(count, chunk)))
        var done: UInt64 = 0
        while done < count {
            let n = min(chunk, count - done)
            try write(zeros.prefix(Int(n)), at: address + done, for: subject, what)
            done += n
        }
    }
}
