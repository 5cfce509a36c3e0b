import Memory
import VMMSys

/// The data path: receive (backend → guest) and transmit (guest → backend).
extension VirtIONet {
    /// What happened to one frame offered to the guest.
    enum Delivery: Equatable {
        /// Placed in `chains` chains; the driver wants an interrupt if `interrupt`.
        case delivered(interrupt: Bool)
        /// Consumed and dropped (filtered out, or larger than a chain without MRG_RXBUF).
        case dropped
        /// Not enough guest buffers: keep the frame, stop polling until the driver adds some.
        case noBuffers
    }

    /// A receive turn for `pair`: first the frame held from last time, then frames read from
    /// the backend, until the budget, the backend or the guest's buffers run out.
    /// QEMU: tap_send() → virtio_net_receive(), virtio_net_handle_rx() → qemu_flush_queued_packets().
    func receive(pair p: Int, _ queue: VirtQueue, _ memory: GuestMemory,
                 _ budget: inout VirtQueueBudget) throws(VirtQueueError) -> VirtQueueProgress {
        var progress = VirtQueueProgress()
        guard let backend, p < currentQueuePairs else {
            setReadPolling(p, false)
            return progress
        }
        let fd = descriptors[p]
        let hostHeader = backend.vnetHeader ? Self.headerSize : 0
        var stalled = false, drained = false
        try pairs[p].withLock { (s: inout Pair) throws(VirtQueueError) in
            while !budget.isExhausted {
                if s.pending == 0 {
                    switch NonBlockingIO.read(fd, into: &s.rxBuffer, count: s.rxBuffer.count) {
                    case .transferred(let n): s.pending = n
                    case .wouldBlock, .endOfFile:
                        drained = true
                        return
                    case .failed(let e):
                        guestError("virtio-net: reading \(backend): \(e)")
                        drained = true
                        return
                    }
                }
                let size = s.pending
                guard size >= hostHeader + 14 else {
                    // Shorter than a header and an Ethernet header: nothing a guest can use.
                    s.pending = 0
                    counters.rxDropped.add(1, ordering: .relaxed)
                    continue
                }
                switch try deliver(&s, size: size, hostHeader: hostHeader, queue, memory) {
                case .noBuffers:
                    stalled = true
                    return
                case .delivered(let interrupt):
                    if interrupt { progress.interrupt = true }
                    counters.rx.add(1, ordering: .relaxed)
                case .dropped:
                    counters.rxDropped.add(1, ordering: .relaxed)
                }
                s.pending = 0
                budget.charge(bytes: size)
            }
        }
        if stalled {
            setReadPolling(p, false)              // before the count: whoever sees the stall sees polling off
            counters.rxStalls.add(1, ordering: .relaxed)
        } else if drained {
            setReadPolling(p, true)
        }
        return progress
    }

    /// Places the frame in `s.rxBuffer[0..<size]` (a `hostHeader`-byte header first) in the
    /// receive queue. QEMU: virtio_net_receive_rcu() with virtio_net_has_buffers(),
    /// receive_filter() and receive_header().
    func deliver(_ s: inout Pair, size: Int, hostHeader: Int, _ queue: VirtQueue,
                 _ memory: GuestMemory) throws(VirtQueueError) -> Delivery {
        let (mergeable, features) = control.withLock { ($0.mergeable, $0.negotiated) }
        let needed = UInt64(size - hostHeader + Self.headerSize)
        func hasBuffers() throws(VirtQueueError) -> Bool {
            if try queue.isEmpty(memory) { return false }
            guard mergeable else { return true }
            return try queue.availableWritableBytes(upTo: needed, memory) >= needed
        }
        if !(try hasBuffers()) {
            // Ask for a kick, then look once more: the driver may have added buffers meanwhile.
            try queue.setNotification(true, memory)
            if !(try hasBuffers()) { return .noBuffers }
        }
        try queue.setNotification(false, memory)
        guard accepts(s.rxBuffer, at: hostHeader, size: size) else { return .dropped }

        var offset = hostHeader, count = 0
        var numBuffersAt: (UInt64, Int)? = nil          // where num_buffers goes: address, bytes there (1 or 2)
        var numBuffersRest: UInt64? = nil               // its second byte, when split across buffers
        while offset < size {
            if count == VirtQueue.maxChainDescriptors {
                throw .malformedRequest(head: 0, "virtio-net unexpected long buffer chain")
            }
            if s.rxChains.count == count {
                s.rxChains.append(DescriptorChain.reusable())
                s.lengths.append(0)
            }
            guard try queue.pop(memory, into: &s.rxChains[count]) else {
                if count > 0 {
                    throw .malformedRequest(head: 0, "virtio-net unexpected empty queue: i \(count) mergeable \(mergeable ? 1 : 0) "
                        + "offset \(offset), size \(size), guest hdr len \(Self.headerSize), host hdr len \(hostHeader) "
                        + "guest features 0x\(String(features, radix: 16))")
                }
                return .dropped
            }
            let chain = s.rxChains[count]
            let firstWritable = chain.readableCount
            guard firstWritable < chain.buffers.count else {
                throw .malformedRequest(head: chain.head, "virtio-net receive queue contains no in buffers")
            }
            var total = 0, guestOffset = 0
            if count == 0 {
                // The header: the backend's ten bytes of virtio_net_hdr (flags, gso, csum), or
                // "no offload" zeros; then num_buffers.
                if hostHeader > 0 {
                    workAroundBrokenDHCPClient(&s.rxBuffer, hostHeader: hostHeader, size: size)
                    _ = try scatter(s.rxBuffer[0..<Self.tapHeaderSize], chain, from: firstWritable, skip: 0, memory)
                } else {
                    _ = try scatter(Self.zeroHeader[0..<Self.tapHeaderSize], chain, from: firstWritable, skip: 0, memory)
                }
                (numBuffersAt, numBuffersRest) = locate(chain, from: firstWritable, offset: Self.numBuffersOffset)
                offset = hostHeader
                total = Self.headerSize
                guestOffset = Self.headerSize
            }
            let written = try scatter(s.rxBuffer[offset..<size], chain, from: firstWritable, skip: guestOffset, memory)
            total += written
            offset += written
            if !mergeable && offset < size {
                // Too small and no merging: give the chain back and drop the frame.
                queue.unpop()
                return .dropped
            }
            s.lengths[count] = UInt32(clamping: total)
            count += 1
        }
        // num_buffers: the chains used with MRG_RXBUF, 1 without (see the type's notes).
        let buffers = UInt16(clamping: mergeable ? count : 1)
        if let (address, n) = numBuffersAt {
            if n == 2 {
                guard memory.storeDirect(buffers, at: address) else { throw .bogusBuffer(address: address, length: 2) }
            } else {
                guard memory.storeDirect(UInt8(truncatingIfNeeded: buffers), at: address) else { throw .bogusBuffer(address: address, length: 1) }
                if let rest = numBuffersRest, !memory.storeDirect(UInt8(truncatingIfNeeded: buffers >> 8), at: rest) {
                    throw .bogusBuffer(address: rest, length: 1)
                }
            }
        }
        for j in 0..<count {
            try queue.fill(head: s.rxChains[j].head, length: s.lengths[j], at: UInt16(j), memory)
        }
        return .delivered(interrupt: try queue.flush(count: UInt16(count), memory))
    }

    static let zeroHeader = [UInt8](repeating: 0, count: VirtIONet.headerSize)

    /// Writes `bytes` into the chain's writable buffers (from buffer index `first`), starting
    /// `skip` bytes in; returns how many fit. A buffer outside guest RAM is the guest's error.
    /// QEMU: iov_from_buf().
    func scatter(_ bytes: ArraySlice<UInt8>, _ chain: DescriptorChain, from first: Int, skip: Int,
                 _ memory: GuestMemory) throws(VirtQueueError) -> Int {
        var skip = UInt64(skip)
        var done = bytes.startIndex
        for i in first..<chain.buffers.count where done < bytes.endIndex {
            let b = chain.buffers[i]
            let length = UInt64(b.length)
            if skip >= length {
                skip -= length
                continue
            }
            let n = Int(min(length - skip, UInt64(bytes.endIndex - done)))
            // b.address + skip cannot wrap: pop checked address + length - 1 ≤ 2^64 - 1.
            let at = b.address + skip
            guard memory.writeDirect(bytes[done..<(done + n)], at: at) else { throw .bogusBuffer(address: b.address, length: b.length) }
            done += n
            skip = 0
        }
        return done - bytes.startIndex
    }

    /// Where byte `offset` (and the next) of the chain's writable part lies: (address, bytes
    /// contiguous there), and the second byte's address if it is in the next buffer.
    func locate(_ chain: DescriptorChain, from first: Int, offset: Int) -> ((UInt64, Int)?, UInt64?) {
        var skip = UInt64(offset)
        for i in first..<chain.buffers.count {
            let b = chain.buffers[i], length = UInt64(b.length)
            if skip >= length {
                skip -= length
                continue
            }
            if length - skip >= 2 { return ((b.address + skip, 2), nil) }
            let next = chain.buffers.indices.contains(i + 1) ? chain.buffers[i + 1].address : nil
            return ((b.address + skip, 1), next)
        }
        return (nil, nil)
    }

    /// dhclient reads DHCP replies through a raw socket that ignores "checksum needed": fill
    /// the UDP checksum of a partial-checksum IPv4 UDP frame from port 67 (bootps) and clear
    /// the flag. QEMU: work_around_broken_dhclient().
    func workAroundBrokenDHCPClient(_ buffer: inout [UInt8], hostHeader h: Int, size: Int) {
        let frame = size - h
        guard buffer[0] & 1 != 0, frame > 27, frame < 1500, buffer[h + 12] == 0x08, buffer[h + 13] == 0x00,
              buffer[h + 23] == 17, buffer[h + 34] == 0, buffer[h + 35] == 67 else { return }
        let ihl = Int(buffer[h + 14] & 0x0f) * 4
        let udp = h + 14 + ihl
        guard ihl >= 20, udp + 8 <= size else { return }
        let udpLength = min(Int(buffer[udp + 4]) << 8 | Int(buffer[udp + 5]), size - udp)
        guard udpLength >= 8 else { return }
        buffer[udp + 6] = 0
        buffer[udp + 7] = 0
        var sum: UInt32 = 0
        for i in stride(from: h + 26, to: h + 34, by: 2) { sum += UInt32(buffer[i]) << 8 | UInt32(buffer[i + 1]) }
        sum += 17 + UInt32(udpLength)
        var i = udp
        while i + 1 < udp + udpLength {
            sum += UInt32(buffer[i]) << 8 | UInt32(buffer[i + 1])
            i += 2
        }
        if i < udp + udpLength { sum += UInt32(buffer[i]) << 8 }
        while sum >> 16 != 0 { sum = (sum & 0xffff) + (sum >> 16) }
        var checksum = ~UInt16(truncatingIfNeeded: sum)
        if checksum == 0 { checksum = 0xffff }
        buffer[udp + 6] = UInt8(truncatingIfNeeded: checksum >> 8)
        buffer[udp + 7] = UInt8(truncatingIfNeeded: checksum)
        buffer[0] &= ~1
    }

    /// A transmit turn for `pair`: the frame the backend refused last time first, then chains
    /// until the queue is empty or the budget runs out; kicks stay off while the burst runs
    /// and are turned back on (with one more look) before the turn ends.
    /// QEMU: virtio_net_handle_tx_bh() → virtio_net_tx_bh() → virtio_net_flush_tx().
    func transmit(pair p: Int, _ queue: VirtQueue, _ memory: GuestMemory,
                  _ budget: inout VirtQueueBudget) throws(VirtQueueError) -> VirtQueueProgress {
        var progress = VirtQueueProgress()
        let hostHeader = backend?.vnetHeader == true ? Self.headerSize : 0
        let fd = p < descriptors.count ? descriptors[p] : nil
        var blocked = false
        try pairs[p].withLock { (s: inout Pair) throws(VirtQueueError) in
            if let pending = s.txPending, let fd {
                switch NonBlockingIO.write(fd, s.txBuffer[0..<pending.length]) {
                case .wouldBlock:
                    blocked = true
                    return
                case .transferred:
                    counters.tx.add(1, ordering: .relaxed)
                case .endOfFile, .failed:
                    counters.txDropped.add(1, ordering: .relaxed)
                }
                s.txPending = nil
                if try queue.push(head: pending.head, length: 0, memory) { progress.interrupt = true }
            }
            try queue.setNotification(false, memory)
            while true {
                while !budget.isExhausted {
                    guard try queue.pop(memory, into: &s.chain) else { break }
                    let head = s.chain.head
                    let readable = s.chain.readableCount
                    guard readable > 0 else {
                        throw .malformedRequest(head: head, "virtio-net header not in first element")
                    }
                    var bytes: UInt64 = 0
                    for i in 0..<readable { bytes += UInt64(s.chain.buffers[i].length) }   // ≤ 1024 × 4 GiB
                    if hostHeader > 0 && bytes < UInt64(Self.headerSize) {
                        throw .malformedRequest(head: head, "virtio-net header incorrect")
                    }
                    let skip = Self.headerSize - hostHeader
                    let frame = bytes >= UInt64(skip) ? bytes - UInt64(skip) : 0
                    budget.charge(bytes: Int(clamping: frame))
                    guard let fd, frame <= UInt64(s.txBuffer.count), frame > 0 else {
                        if fd != nil { guestError("virtio-net: dropped a \(frame)-byte transmit frame (at most \(s.txBuffer.count))") }
                        counters.txDropped.add(1, ordering: .relaxed)
                        if try queue.push(head: head, length: 0, memory) { progress.interrupt = true }
                        continue
                    }
                    try gather(&s, readable: readable, skip: skip, count: Int(frame), memory)
                    switch NonBlockingIO.write(fd, s.txBuffer[0..<Int(frame)]) {
                    case .wouldBlock:
                        s.txPending = (head, Int(frame))
                        blocked = true
                        return
                    case .transferred:
                        counters.tx.add(1, ordering: .relaxed)
                    case .endOfFile, .failed:
                        counters.txDropped.add(1, ordering: .relaxed)
                    }
                    if try queue.push(head: head, length: 0, memory) { progress.interrupt = true }
                }
                if budget.isExhausted { return }            // the transport comes back next round
                try queue.setNotification(true, memory)
                guard !(try queue.isEmpty(memory)) else { return }
                try queue.setNotification(false, memory)
            }
        }
        if blocked { setWritePolling(p, true) }
        return progress
    }

    /// Copies the chain's readable bytes, less the first `skip`, into `s.txBuffer[0..<count]`.
    func gather(_ s: inout Pair, readable: Int, skip: Int, count: Int, _ memory: GuestMemory) throws(VirtQueueError) {
        var skip = UInt64(skip)
        var done = 0
        for i in 0..<readable where done < count {
            let b = s.chain.buffers[i]
            let length = UInt64(b.length)
            if skip >= length {
                skip -= length
                continue
            }
            let n = Int(min(length - skip, UInt64(count - done)))
            guard memory.readDirect(at: b.address + skip, count: n, into: &s.txBuffer, at: done) else {
                throw .bogusBuffer(address: b.address, length: b.length)
            }
            done += n
            skip = 0
        }
    }
}
