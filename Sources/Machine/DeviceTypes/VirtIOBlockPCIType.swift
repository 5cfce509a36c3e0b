import VirtIO

extension DeviceType {
    /// `-device virtio-blk-pci,drive=ID[,serial=S]` (also implied by `-drive if=virtio`): the
    /// virtio block device over a raw image. QEMU: hw/block/virtio-blk.c, virtio-blk-pci.c.
    public static let virtioBlockPCI = DeviceType(
        name: "virtio-blk-pci", bus: .pci, category: .storage, alias: "virtio-blk",
        properties: virtioPCIProperties + [
            DeviceProperty("drive", .link(.drive), help: "Node name or ID of a block device to use as a backend"),
            DeviceProperty("serial", .string),
            DeviceProperty("bootindex", .int32, default: .signed(-1), check: bootIndexCheck),
        ],
        validate: { d, c throws(ConfigurationError) in
            guard let id = d.string("drive") else { throw ConfigurationError("-device virtio-blk-pci: drive property not set") }
            guard c.drives.contains(where: { $0.id == id }) else {
                throw ConfigurationError("-device virtio-blk-pci: Property 'virtio-blk-pci.drive' can't find value '\(id)'")
            }
            let users = c.devices.filter { $0.driver == "virtio-blk-pci" && $0.string("drive") == id }.count
            guard users <= 1 else { throw ConfigurationError("-device virtio-blk-pci: drive '\(id)' is already in use") }
        },
        realize: { d, context in
            let drive = try context.drive(d.string("drive") ?? "")
            let block: VirtIOBlock
            do {
                block = try VirtIOBlock(path: drive.file, readOnly: drive.readOnly, serial: d.string("serial") ?? "", logger: context.logger)
            } catch {
                throw MachineError("-drive file=\(drive.file): \(error)")
            }
            return try plugVirtIO(d, context, block)
        })
}
