/// Why a virtqueue cannot be used. Each is a driver bug or a hostile guest; the transport puts
/// the device in its error state (QEMU's `virtio_error()`: DEVICE_NEEDS_RESET, a config-change
/// interrupt, no more processing until reset) and logs the description, rate-limited. Every
/// case corresponds to one of QEMU's messages, named in its comment.
public enum VirtQueueError: Error, Equatable, CustomStringConvertible {
    /// A ring does not lie entirely in guest RAM (or its range wraps past 2^64).
    /// QEMU: virtio_init_region_cache() "Cannot map desc" / "used" / "avail".
    case cannotMap(ring: String, address: UInt64, size: UInt64)
    /// A ring access failed after the rings were accepted (the memory map changed under it).
    case guestMemory(String)
    /// The driver published more new heads than the queue holds.
    /// QEMU: virtqueue_num_heads() "Guest moved used index from %u to %u".
    case availIndexJump(lastSeen: UInt16, published: UInt16, size: UInt16)
    /// A head index or a `next` index outside the descriptor table.
    /// QEMU: virtqueue_get_head() "Guest says index %u is available", "Desc next is %u".
    case descriptorIndex(UInt16, size: UInt16)
    /// More descriptors than the table holds: a loop. QEMU: "Looped descriptor".
    case chainTooLong(head: UInt16)
    /// An indirect table of length 0 or not a multiple of 16, or one outside guest RAM.
    /// QEMU: "Invalid size for indirect buffer table", "Cannot map indirect buffer".
    case badIndirect(head: UInt16)
    /// A descriptor of length 0. QEMU: virtqueue_map_desc() "zero sized buffers are not allowed".
    case zeroLengthBuffer(head: UInt16)
    /// More than `VirtQueue.maxChainDescriptors` buffers in one chain.
    /// QEMU: virtqueue_map_desc() "too many write descriptors in indirect table".
    case tooManyDescriptors(head: UInt16)
    /// A device-readable buffer after a device-writable one.
    /// QEMU: "Incorrect order for descriptors".
    case descriptorOrder(head: UInt16)
    /// A buffer whose range wraps past 2^64 or leaves guest RAM.
    /// QEMU: virtqueue_map_desc() "bogus descriptor or out of resources".
    case bogusBuffer(address: UInt64, length: UInt32)
    /// More chains taken and not returned than the queue has entries (heads published twice).
    /// QEMU: virtqueue_split_pop() "Virtqueue size exceeded".
    case sizeExceeded(size: UInt16)
    /// A device-level request QEMU's device refuses with virtio_error() (e.g. virtio-blk
    /// "missing headers").
    case malformedRequest(head: UInt16, String)

    /// One line for the log, naming the chain or the address at fault.
    public var description: String {
        switch self {
        case .cannotMap(let ring, let a, let n): return "cannot map \(ring) ring at 0x\(String(a, radix: 16)) (\(n) bytes)"
        case .guestMemory(let e): return "virtqueue: \(e)"
        case .availIndexJump(let l, let p, let n): return "guest moved avail idx from \(l) to \(p) (queue size \(n))"
        case .descriptorIndex(let i, let n): return "descriptor index \(i) outside the table (size \(n))"
        case .chainTooLong(let h): return "looped descriptor chain from head \(h)"
        case .badIndirect(let h): return "invalid indirect descriptor table in chain \(h)"
        case .zeroLengthBuffer(let h): return "zero-sized buffer in chain \(h)"
        case .tooManyDescriptors(let h): return "more than \(VirtQueue.maxChainDescriptors) descriptors in chain \(h)"
        case .descriptorOrder(let h): return "device-readable descriptor after a writable one in chain \(h)"
        case .bogusBuffer(let a, let n): return "bogus descriptor 0x\(String(a, radix: 16)) + \(n)"
        case .malformedRequest(let h, let what): return "\(what) (chain \(h))"
        case .sizeExceeded(let n): return "virtqueue size exceeded (\(n) chains in use)"
        }
    }
}

/// How much one queue may do per wake-up of the I/O thread, so that a flood on one queue
/// delays others by one budget at most; the queue is served again on the next round.
public struct VirtQueueBudget: Sendable, Equatable {
    /// Chains left this turn.
    public var chains: Int
    /// Payload bytes left this turn.
    public var bytes: Int

    /// A budget of `chains` chains and `bytes` bytes.
    public init(chains: Int, bytes: Int) {
        self.chains = chains
        self.bytes = bytes
    }

    /// The default per queue per wake-up: 64 chains or 256 KiB, whichever runs out first.
    public static let perWakeUp = VirtQueueBudget(chains: 64, bytes: 256 << 10)

    /// Nothing left: stop popping and come back on the next round.
    public var isExhausted: Bool { chains <= 0 || bytes <= 0 }

    /// Accounts one chain that moved `bytes` bytes.
    public mutating func charge(bytes n: Int) {
        chains -= 1
        bytes = n >= bytes ? 0 : bytes - max(n, 0)
    }
}
