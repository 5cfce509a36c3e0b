import KVM
import Logging
import Memory
import Synchronization
import VMMSys

/// Coalesced MMIO and PIO for the accelerator: the kernel zones that follow the memory API's
/// coalesced ranges, and the drain that replays the ring's buffered writes, oldest first, into
/// the address spaces. QEMU: `kvm_coalesce_mmio_region()`, `kvm_coalesce_pio_add()` and their
/// `_del` twins, `kvm_flush_coalesced_mmio_buffer()`.
///
/// When the drain runs: before any exit of any vCPU is handled (whenever the ring is not
/// empty), when a vCPU stops or parks, before a flushing region's callbacks
/// (`MemoryRegion.setFlushCoalesced`, QEMU's `prepare_mmio_access()`), and before a region's
/// coalesced ranges are removed. Deliberate difference: QEMU 7.2 drains only in the last two
/// places (and in a few display devices), so a port write that follows coalesced MMIO writes
/// in program order can reach its device first; here every exit is handled after every write
/// the guest made before it, as QEMU's `kvm_cpu_exec()` did before it stopped draining on
/// each exit.
///
/// One drain at a time (a recursive lock; a drained write that reaches a flushing region
/// re-enters and returns at once, as QEMU's `coalesced_flush_in_progress`). Another thread
/// that wants to drain waits for the running drain, so its exit is handled after the writes
/// before it. A coalesced region's write callback must therefore not wait for another vCPU
/// or change the memory topology (QEMU runs both under the BQL instead).
final class CoalescedIO: @unchecked Sendable {
    // @unchecked: `draining` is guarded by `lock`; everything else is immutable or Mutex/Atomic.
    let vm: VirtualMachine
    let logger: Logger
    /// `KVM_CAP_COALESCED_MMIO` (its value is the ring's page) and `KVM_CAP_COALESCED_PIO`.
    let mmioPage: Int
    let pio: Bool
    private let lock = RecursiveLock()
    private var draining = false
    private let spaces = Mutex<(memory: AddressSpace, io: AddressSpace)?>(nil)
    /// Zones registered with the kernel (address, length, pio), for the stats and for
    /// unregistering them all if the ring breaks.
    private let zones = Mutex<[Zone]>([])
    let drained = Atomic<UInt64>(0)
    private let broken = Atomic<Bool>(false)
    private let faultLog = RateLimitedLog()

    struct Zone: Equatable { var address: UInt64, length: UInt32, pio: Bool }

    init(vm: VirtualMachine, logger: Logger) {
        self.vm = vm
        self.logger = logger
        mmioPage = vm.system.checkExtension(KVMCapability.coalescedMMIO)
        pio = mmioPage > 0 && vm.system.checkExtension(KVMCapability.coalescedPIO) > 0
    }

    /// Where drained writes go.
    func attach(memory: AddressSpace, io: AddressSpace) {
        spaces.withLock { $0 = (memory, io) }
    }

    /// Registers a zone (MMIO, or PIO on the I/O listener) if the kernel coalesces that kind.
    /// A range the kernel will not take (beyond its 32-bit zone length, or refused) is left to
    /// ordinary exits: slower, never wrong. QEMU: `kvm_coalesce_mmio_region()` (which ignores
    /// the result and truncates the length to 32 bits).
    func add(address: UInt64, length: UInt64, pio isPIO: Bool, region: String) {
        guard mmioPage > 0, !isPIO || pio, !broken.load(ordering: .relaxed) else { return }
        guard length > 0, length <= UInt64(UInt32.max) else {
            faultLog.log({ logger.warning("\($0)") }) {
                "coalesced \(isPIO ? "PIO" : "MMIO") range of '\(region)' at \(hex(address)) (\(hex(length)) bytes) is too long for KVM; its writes exit one by one"
            }
            return
        }
        let zone = Zone(address: address, length: UInt32(length), pio: isPIO)
        do {
            try vm.registerCoalescedZone(address: address, size: zone.length, pio: isPIO)
            zones.withLock { $0.append(zone) }
        } catch {
            faultLog.log({ logger.warning("\($0)") }) { "\(error); writes to '\(region)' there exit one by one" }
        }
    }

    /// Unregisters a zone added by `add`. QEMU: `kvm_uncoalesce_mmio_region()`, `kvm_coalesce_pio_del()`.
    func remove(address: UInt64, length: UInt64, pio isPIO: Bool) {
        guard length <= UInt64(UInt32.max) else { return }
        let zone = Zone(address: address, length: UInt32(length), pio: isPIO)
        guard zones.withLock({ z -> Bool in
            guard let i = z.firstIndex(of: zone) else { return false }
            z.remove(at: i)
            return true
        }) else { return }
        do {
            try vm.unregisterCoalescedZone(address: address, size: zone.length, pio: isPIO)
        } catch {
            faultLog.log({ logger.warning("\($0)") }) { "\(error)" }
        }
    }

    /// Zones currently registered with the kernel.
    var zoneCount: Int { zones.withLock { $0.count } }

    /// Replays every buffered write into the memory or I/O address space, in ring order.
    /// QEMU: `kvm_flush_coalesced_mmio_buffer()`.
    func flush() {
        guard let ring = vm.coalescedMMIORing, !broken.load(ordering: .relaxed) else { return }
        lock.lock()
        defer { lock.unlock() }
        guard !draining, let (memory, io) = spaces.withLock({ $0 }) else { return }
        draining = true
        defer { draining = false }
        let (count, fault) = ring.drain { w in
            if w.isPIO {
                io.write(w.address, value: w.value, size: w.length)
            } else {
                memory.write(w.address, value: w.value, size: w.length)
            }
        }
        drained.add(UInt64(count), ordering: .relaxed)
        switch fault {
        case nil:
            break
        case .entry?:
            faultLog.log({ logger.error("\($0)") }) { "\(fault!)" }
        case .index?:
            // The ring cannot be trusted: stop coalescing, so writes exit one by one from now on.
            broken.store(true, ordering: .relaxed)
            let all = zones.withLock { z in defer { z = [] }; return z }
            for z in all { try? vm.unregisterCoalescedZone(address: z.address, size: z.length, pio: z.pio) }
            logger.error("\(fault!); coalescing turned off, writes exit one by one")
        }
    }

    /// Whether the ring was found corrupt and coalescing turned off.
    var isBroken: Bool { broken.load(ordering: .relaxed) }
}
