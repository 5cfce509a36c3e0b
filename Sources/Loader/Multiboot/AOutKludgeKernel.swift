import VMMSys
/// Places a kernel by the address fields of its Multiboot header (flag bit 16, the "a.out
/// kludge"), for kernels that are not ELF. The rules follow the specification and QEMU:
/// the file is loaded from the byte that corresponds to `load_addr`, i.e. from
/// `header offset - (header_addr - load_addr)`.
enum AOutKludgeKernel {
    static func parse(_ file: [UInt8], header: MultibootHeader,
                      fields f: MultibootHeader.AddressFields, path: String) throws(LoaderError) -> KernelImage {
        let size = UInt64(file.count)
        guard f.headerAddress >= f.loadAddress else {
            throw LoaderError(path, "a.out kludge: header_addr \(hex(f.headerAddress)) is below "
                + "load_addr \(hex(f.loadAddress))")
        }
        let headerDistance = UInt64(f.headerAddress - f.loadAddress)
        guard headerDistance <= UInt64(header.offset) else {
            throw LoaderError(path, "a.out kludge: header_addr - load_addr (\(hex(headerDistance))) "
                + "exceeds the header's file offset \(hex(header.offset))")
        }
        let textOffset = UInt64(header.offset) - headerDistance
        let loadSize: UInt64
        if f.loadEndAddress != 0 {
            guard f.loadEndAddress >= f.loadAddress else {
                throw LoaderError(path, "a.out kludge: load_end_addr \(hex(f.loadEndAddress)) is below "
                    + "load_addr \(hex(f.loadAddress))")
            }
            loadSize = UInt64(f.loadEndAddress - f.loadAddress)
        } else {
            loadSize = size - textOffset
        }
        guard ByteReader(bytes: file).contains(offset: textOffset, length: loadSize) else {
            throw LoaderError(path, "a.out kludge: load range [\(hex(textOffset)), "
                + "\(hex(textOffset + loadSize))) lies outside the file (size \(hex(size)))")
        }
        var memorySize = loadSize
        if f.bssEndAddress != 0 {
            let loadEnd = UInt64(f.loadAddress) + loadSize
            guard UInt64(f.bssEndAddress) >= loadEnd else {
                throw LoaderError(path, "a.out kludge: bss_end_addr \(hex(f.bssEndAddress)) is below "
                    + "the end of the loaded image \(hex(loadEnd))")
            }
            memorySize = UInt64(f.bssEndAddress) - UInt64(f.loadAddress)
        }
        let image = LoadSegment(label: "a.out image", address: UInt64(f.loadAddress),
                                fileOffset: textOffset, fileSize: loadSize, memorySize: memorySize)
        return KernelImage(segments: memorySize > 0 ? [image] : [], entry: UInt64(f.entryAddress))
    }
}
