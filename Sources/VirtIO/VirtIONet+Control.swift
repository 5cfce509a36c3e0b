internal import CVirtIO
import Memory

/// The control queue and the receive filter it programs.
extension VirtIONet {
    /// Serves control commands: each chain is a 2-byte {class, command} header and its data
    /// (device-readable), then the 1-byte ack (device-writable). A chain without the header or
    /// the ack breaks the device. QEMU: virtio_net_handle_ctrl() → virtio_net_handle_ctrl_iov().
    func controlQueue(_ queue: VirtQueue, _ memory: GuestMemory, _ budget: inout VirtQueueBudget) throws(VirtQueueError) -> VirtQueueProgress {
        var progress = VirtQueueProgress()
        var chain = DescriptorChain()
        while !budget.isExhausted, try queue.pop(memory, into: &chain) {
            guard chain.writableBytes >= 1, chain.readableBytes >= UInt64(VirtIONetControl.headerSize) else {
                throw .malformedRequest(head: chain.head, "virtio-net ctrl missing headers")
            }
            let command = CommandData(chain: chain, memory: memory)
            let header = try command.bytes(at: 0, count: VirtIONetControl.headerSize)
            let ack = try execute(class: header[0], command: header[1], command)
            let status = chain.buffers[chain.readableCount]
            guard memory.storeDirect(ack, at: status.address) else { throw .bogusBuffer(address: status.address, length: status.length) }
            budget.charge(bytes: 1)
            if try queue.push(head: chain.head, length: 1, memory) { progress.interrupt = true }
        }
        return progress
    }

    /// The bytes after a control chain's 2-byte header, read on demand (a hostile chain may
    /// claim gigabytes; only what a command needs is copied).
    struct CommandData {
        let chain: DescriptorChain
        let memory: GuestMemory
        /// Readable bytes in all (the header included).
        var size: UInt64 { chain.readableBytes }

        /// `count` (small) readable bytes from `offset`, or fewer when the chain ends first.
        func bytes(at offset: UInt64, count: Int) throws(VirtQueueError) -> [UInt8] {
            var out = [UInt8](repeating: 0, count: count)
            var skip = offset, done = 0
            for b in chain.buffers.prefix(chain.readableCount) where done < count {
                let length = UInt64(b.length)
                if skip >= length {
                    skip -= length
                    continue
                }
                let n = Int(min(length - skip, UInt64(count - done)))
                guard memory.readDirect(at: b.address + skip, count: n, into: &out, at: done) else {
                    throw .bogusBuffer(address: b.address, length: b.length)
                }
                done += n
                skip = 0
            }
            return Array(out.prefix(done))
        }
    }

    /// One command; the ack (VIRTIO_NET_OK or VIRTIO_NET_ERR) as QEMU answers it.
    func execute(class cls: UInt8, command cmd: UInt8, _ data: CommandData) throws(VirtQueueError) -> UInt8 {
        let ok = VirtIONetControl.ok, err = VirtIONetControl.err
        let payload = data.size - UInt64(VirtIONetControl.headerSize)
        func le(_ b: [UInt8]) -> UInt64 { b.enumerated().reduce(0) { $0 | UInt64($1.element) << (8 * UInt64($1.offset)) } }
        switch cls {
        case VirtIONetControl.classRx:
            // QEMU: virtio_net_handle_rx_mode().
            let on = try data.bytes(at: UInt64(VirtIONetControl.headerSize), count: 1)
            guard on.count == 1 else { return err }
            let value = on[0] != 0
            return control.withLock { c -> UInt8 in
                switch cmd {
                case VirtIONetControl.rxPromisc: c.promisc = value
                case VirtIONetControl.rxAllMulti: c.allMulti = value
                case VirtIONetControl.rxAllUni: c.allUni = value
                case VirtIONetControl.rxNoMulti: c.noMulti = value
                case VirtIONetControl.rxNoUni: c.noUni = value
                case VirtIONetControl.rxNoBroadcast: c.noBroadcast = value
                default: return err
                }
                return ok
            }
        case VirtIONetControl.classMAC:
            return try macCommand(cmd, data)
        case VirtIONetControl.classVLAN:
            // QEMU: virtio_net_handle_vlan_table().
            let b = try data.bytes(at: UInt64(VirtIONetControl.headerSize), count: 2)
            guard b.count == 2 else { return err }
            let vid = Int(le(b))
            guard vid < VirtIONetControl.maxVLAN else { return err }
            return control.withLock { c -> UInt8 in
                switch cmd {
                case VirtIONetControl.vlanAdd: c.vlans[vid >> 5] |= 1 << UInt32(vid & 0x1f)
                case VirtIONetControl.vlanDel: c.vlans[vid >> 5] &= ~(1 << UInt32(vid & 0x1f))
                default: return err
                }
                return ok
            }
        case VirtIONetControl.classAnnounce:
            // QEMU: virtio_net_handle_announce().
            return control.withLock { c -> UInt8 in
                guard cmd == VirtIONetControl.announceAck, c.status & Self.statusAnnounce != 0 else { return err }
                c.status &= ~Self.statusAnnounce
                return ok
            }
        case VirtIONetControl.classMQ:
            // QEMU: virtio_net_handle_mq(); RSS and hash reports are not offered, so their
            // commands fail as QEMU's do without the features.
            guard cmd == VirtIONetControl.mqPairsSet else { return err }
            guard control.withLock({ $0.negotiated & VirtIONetFeature.mq != 0 }) else { return err }
            let b = try data.bytes(at: UInt64(VirtIONetControl.headerSize), count: 2)
            guard b.count == 2 else { return err }
            let requested = Int(le(b))
            let changed = control.withLock { c -> Bool? in
                guard requested >= VirtIONetControl.pairsMin, requested <= VirtIONetControl.pairsMax,
                      requested <= maxPairs, c.multiqueue else { return nil }
                defer { c.currentPairs = requested }
                return c.currentPairs != requested
            }
            guard let changed else { return err }
            if changed {
                applyQueuePairs()
                for p in 0..<requested { setReadPolling(p, true) }
            }
            return ok
        case VirtIONetControl.classGuestOffloads:
            // QEMU: virtio_net_handle_offloads().
            guard control.withLock({ $0.negotiated & VirtIONetFeature.ctrlGuestOffloads != 0 }) else { return err }
            let b = try data.bytes(at: UInt64(VirtIONetControl.headerSize), count: 8)
            guard b.count == 8, cmd == VirtIONetControl.guestOffloadsSet, backend?.vnetHeader == true else { return err }
            let offloads = le(b)
            let applied = control.withLock { c -> UInt64? in
                let supported = VirtIONetFeature.guestOffloads & c.negotiated
                guard offloads & ~supported == 0 else { return nil }
                c.guestOffloads = offloads
                return offloads
            }
            guard let applied else { return err }
            applyOffloads(applied)
            return ok
        default:
            _ = payload
            return err
        }
    }

    /// MAC_ADDR_SET: exactly six bytes. MAC_TABLE_SET: {le32 n, n unicast MACs} {le32 m, m
    /// multicast MACs}, the second part exactly filling the rest; more than the table holds
    /// sets the overflow flag (that class then passes). QEMU: virtio_net_handle_mac().
    func macCommand(_ cmd: UInt8, _ data: CommandData) throws(VirtQueueError) -> UInt8 {
        let ok = VirtIONetControl.ok, err = VirtIONetControl.err
        let payload = data.size - UInt64(VirtIONetControl.headerSize)
        if cmd == VirtIONetControl.macAddrSet {
            guard payload == 6 else { return err }
            let m = try data.bytes(at: UInt64(VirtIONetControl.headerSize), count: 6)
            guard m.count == 6 else { return err }
            control.withLock { $0.mac = MACAddress(m) }
            return ok
        }
        guard cmd == VirtIONetControl.macTableSet else { return err }
        let limit = VirtIONetControl.macTableEntries
        func count(at offset: UInt64) throws(VirtQueueError) -> UInt32? {
            let b = try data.bytes(at: offset, count: 4)
            guard b.count == 4 else { return nil }
            return UInt32(b[0]) | UInt32(b[1]) << 8 | UInt32(b[2]) << 16 | UInt32(b[3]) << 24
        }
        var table: [MACAddress] = []
        var uniOverflow = false, multiOverflow = false
        var at = UInt64(VirtIONetControl.headerSize)
        guard let unicast = try count(at: at) else { return err }
        at += 4
        // Deliberate difference: n × 6 is computed in 64 bits (QEMU's 32-bit product wraps).
        let unicastBytes = UInt64(unicast) * 6
        guard unicastBytes <= data.size - at else { return err }
        if unicast <= UInt32(limit) {
            let b = try data.bytes(at: at, count: Int(unicastBytes))
            guard b.count == Int(unicastBytes) else { return err }
            for i in 0..<Int(unicast) { table.append(MACAddress(Array(b[(6 * i)..<(6 * i + 6)]))) }
        } else {
            uniOverflow = true
        }
        at += unicastBytes
        let firstMulti = table.count
        guard let multicast = try count(at: at) else { return err }
        at += 4
        let multicastBytes = UInt64(multicast) * 6
        guard multicastBytes == data.size - at else { return err }
        if Int(multicast) <= limit - table.count {
            let b = try data.bytes(at: at, count: Int(multicastBytes))
            guard b.count == Int(multicastBytes) else { return err }
            for i in 0..<Int(multicast) { table.append(MACAddress(Array(b[(6 * i)..<(6 * i + 6)]))) }
        } else {
            multiOverflow = true
        }
        control.withLock { c in
            c.macTable = table
            c.firstMulti = firstMulti
            c.uniOverflow = uniOverflow
            c.multiOverflow = multiOverflow
        }
        return ok
    }

    /// Whether the frame at `buffer[offset..<size]` passes the receive filter: promiscuous
    /// mode, the VLAN table, broadcast/multicast/unicast modes, the MAC and the MAC table.
    /// QEMU: receive_filter().
    func accepts(_ buffer: [UInt8], at offset: Int, size: Int) -> Bool {
        control.withLock { c -> Bool in
            if c.promisc { return true }
            guard size - offset >= 14 else { return false }
            if buffer[offset + 12] == 0x81 && buffer[offset + 13] == 0x00, size - offset >= 16 {
                let vid = (Int(buffer[offset + 14]) << 8 | Int(buffer[offset + 15])) & 0xfff
                if c.vlans[vid >> 5] & (1 << UInt32(vid & 0x1f)) == 0 { return false }
            }
            func matches(_ m: MACAddress) -> Bool {
                let b = m.bytes
                return buffer[offset] == b.0 && buffer[offset + 1] == b.1 && buffer[offset + 2] == b.2
                    && buffer[offset + 3] == b.3 && buffer[offset + 4] == b.4 && buffer[offset + 5] == b.5
            }
            if buffer[offset] & 1 != 0 {
                if (0..<6).allSatisfy({ buffer[offset + $0] == 0xff }) { return !c.noBroadcast }
                if c.noMulti { return false }
                if c.allMulti || c.multiOverflow { return true }
                return c.macTable[c.firstMulti...].contains(where: matches)
            }
            if c.noUni { return false }
            if c.allUni || c.uniOverflow { return true }
            if matches(c.mac) { return true }
            return c.macTable[..<c.firstMulti].contains(where: matches)
        }
    }
}
