import Logging
import SystemPackage
import Synchronization

/// One thread waiting on many descriptors — the virtqueues' ioeventfds, tap devices, chardev
/// sockets — and running each one's handler when it fires: where device work happens, off the
/// vCPU threads. QEMU: an IOThread's AioContext (aio_set_event_notifier, aio_set_fd_handler);
/// kvmtool: `ioeventfd.c`'s epoll thread.
///
/// Fairness: a handler does one budgeted turn of work and says whether it wants another
/// (`Next.again`), a later one (`Next.at`, e.g. a rate limit), or none. The loop runs in rounds:
/// every handler that fired, is due, or asked again runs once per round, in that order, so a
/// flood on one queue delays another queue by at most one budget.
///
/// Plain descriptors (`watch(_:events:handler:)`) can stop being polled and be polled again
/// (`setEvents`): a device with nowhere to put input (a receive queue without buffers) stops
/// reading its backend instead of spinning on a descriptor that stays readable, as QEMU's
/// `tap_read_poll(false)` does. A stopped descriptor is taken out of the epoll set altogether,
/// since epoll reports hang-ups and errors even for an empty event mask.
///
/// The loop allocates nothing per wake-up once its buffers have grown to the number of
/// handlers (the hot path of exitless I/O runs through it for every packet).
public final class IOThread: Sendable {
    /// What a handler wants after its turn.
    public enum Next: Sendable, Equatable {
        /// Done until its notifier fires again.
        case idle
        /// More work is waiting: run again next round.
        case again
        /// Run again at this instant (or when the notifier fires, if sooner).
        case at(ContinuousClock.Instant)
    }

    /// Readiness of a plain descriptor (epoll's bits).
    public struct Events: OptionSet, Sendable, Hashable {
        /// The epoll bits.
        public let rawValue: UInt32
        /// Events from epoll bits.
        public init(rawValue: UInt32) { self.rawValue = rawValue }
        /// EPOLLIN.
        public static let readable = Events(rawValue: 0x001)
        /// EPOLLOUT.
        public static let writable = Events(rawValue: 0x004)
        /// EPOLLERR (always reported while watched).
        public static let error = Events(rawValue: 0x008)
        /// EPOLLHUP (always reported while watched).
        public static let hangUp = Events(rawValue: 0x010)
    }

    /// A plain descriptor registered with `watch(_:events:handler:)`.
    public struct Watch: Sendable, Hashable {
        let token: UInt64
    }

    private enum Body {
        case notifier(EventNotifier, @Sendable () -> Next)
        case descriptor(FileDescriptor, @Sendable (Events) -> Next)
    }

    private struct Handler {
        let body: Body
        /// For a descriptor: the events asked for ([] = not in the epoll set).
        var events: Events
    }

    private let epoll: Epoll
    private let stopNotifier: EventNotifier
    private let handlers = Mutex<[UInt64: Handler]>([:])
    /// Descriptor watches asked to run a turn without readiness (`schedule`).
    private let scheduled = Mutex<[UInt64]>([])
    private let wakeUp: EventNotifier
    private let nextToken = Atomic<UInt64>(2)
    private let logger: Logger
    private let running = Atomic<Bool>(false)
    private let name: String
    /// Token 0 stops the loop; token 1 wakes it for `schedule`.
    private static let stopToken: UInt64 = 0, wakeToken: UInt64 = 1

    /// Creates the loop (its epoll set and its stop and wake-up eventfds); no thread runs until
    /// `start()`. QEMU: iothread_init().
    /// - Parameters:
    ///   - name: the thread's name (at most 15 bytes are kept).
    ///   - logger: where a failing handler registration or wait is reported.
    public init(name: String = "iothread", logger: Logger = Logger(label: "vmm.iothread")) throws(SystemError) {
        epoll = try Epoll()
        stopNotifier = try EventNotifier()
        wakeUp = try EventNotifier()
        self.logger = logger
        self.name = name
        try epoll.add(stopNotifier.fileDescriptor, token: Self.stopToken)
        try epoll.add(wakeUp.fileDescriptor, token: Self.wakeToken)
    }

    /// Runs `handler` on this thread each time `notifier` is signalled (after clearing it), and
    /// again as the handler's `Next` asks.
    public func watch(_ notifier: EventNotifier, handler: @escaping @Sendable () -> Next) throws(SystemError) {
        let token = nextToken.add(1, ordering: .relaxed).oldValue
        handlers.withLock { $0[token] = Handler(body: .notifier(notifier, handler), events: .readable) }
        try epoll.add(notifier.fileDescriptor, token: token)
    }

    /// Runs `handler` on this thread with the ready events each time `fd` is ready for any of
    /// `events` (level-triggered: it keeps firing while the condition holds), and again as the
    /// handler's `Next` asks (then with no events). `events` may be empty: the descriptor is
    /// registered but not polled until `setEvents`. The caller keeps `fd` open until `unwatch`.
    /// QEMU: aio_set_fd_handler().
    public func watch(_ fd: FileDescriptor, events: Events = .readable,
                      handler: @escaping @Sendable (Events) -> Next) throws(SystemError) -> Watch {
        let token = nextToken.add(1, ordering: .relaxed).oldValue
        handlers.withLock { $0[token] = Handler(body: .descriptor(fd, handler), events: []) }
        let watch = Watch(token: token)
        do throws(SystemError) { try setEvents(watch, events) } catch {
            handlers.withLock { $0[token] = nil }
            throw error
        }
        return watch
    }

    /// Changes what `watch` is polled for; [] stops polling it (the handler still runs for
    /// `again`/`at`/`schedule`); `.hangUp` alone keeps only hang-ups and errors (a socket whose
    /// reader has no room must still notice its peer leaving). Does nothing when the events are
    /// unchanged, so a device may call it on every turn. Thread-safe.
    /// QEMU: tap_read_poll() / tap_write_poll(), char-socket's hang-up watch.
    public func setEvents(_ watch: Watch, _ events: Events) throws(SystemError) {
        try handlers.withLock { (h: inout [UInt64: Handler]) throws(SystemError) in
            guard var handler = h[watch.token], case .descriptor(let fd, _) = handler.body else { return }
            let wanted = events.subtracting(.error)
            guard handler.events != wanted else { return }
            let mask = wanted.subtracting(.hangUp).rawValue
            if handler.events.isEmpty {
                try epoll.add(fd, events: mask, token: watch.token)
            } else if wanted.isEmpty {
                try epoll.remove(fd)
            } else {
                try epoll.modify(fd, events: mask, token: watch.token)
            }
            handler.events = wanted
            h[watch.token] = handler
        }
    }

    /// The events `watch` is polled for now.
    public func events(of watch: Watch) -> Events { handlers.withLock { $0[watch.token]?.events ?? [] } }

    /// Stops watching the descriptor and drops its handler (a turn already under way finishes).
    public func unwatch(_ watch: Watch) {
        handlers.withLock { h in
            guard let handler = h[watch.token], case .descriptor(let fd, _) = handler.body else { return }
            if !handler.events.isEmpty { try? epoll.remove(fd) }
            h[watch.token] = nil
        }
    }

    /// Runs `watch`'s handler (with no events) in the next round even if its descriptor is not
    /// ready: a device whose backend gained room or data by other means. Thread-safe.
    /// QEMU: qemu_bh_schedule() of a device's flush.
    public func schedule(_ watch: Watch) {
        let first = scheduled.withLock { s -> Bool in
            guard !s.contains(watch.token) else { return false }
            s.append(watch.token)
            return true
        }
        if first { wakeUp.set() }
    }

    /// Starts the thread (once; later calls do nothing). If the host refuses a thread, logs
    /// why and leaves the I/O thread stopped, so a later `start()` may try again.
    public func start() {
        guard !running.exchange(true, ordering: .acquiringAndReleasing) else { return }
        do {
            try HostThread.start(name: name) { [self] in loop() }
        } catch {
            logger.error("\(name): \(error)")
            running.store(false, ordering: .releasing)
        }
    }

    /// Asks the thread to finish.
    public func stop() { stopNotifier.set() }

    /// One entry of a round: the token and the ready events (none for a re-run or a timer).
    private struct Turn {
        var token: UInt64
        var events: UInt32
    }

    private func loop() {
        // Reused across rounds: after the first few rounds nothing here allocates.
        var again: [UInt64] = []                                   // asked for another turn
        var timers: [(token: UInt64, due: ContinuousClock.Instant)] = []  // asked for a later turn
        var round: [Turn] = []
        var pendingSchedule: [UInt64] = []
        var buffer = EpollEventBuffer()
        again.reserveCapacity(64)
        timers.reserveCapacity(64)
        round.reserveCapacity(128)
        pendingSchedule.reserveCapacity(16)
        func indexInRound(_ token: UInt64) -> Int? {
            var i = 0
            while i < round.count {
                if round[i].token == token { return i }
                i += 1
            }
            return nil
        }
        while true {
            let timeout: Int32
            if !again.isEmpty {
                timeout = 0
            } else if var soonest = timers.first?.due {
                for i in 1..<max(timers.count, 1) where timers[i].due < soonest { soonest = timers[i].due }
                let left = ContinuousClock.now.duration(to: soonest)
                let ms = left.components.seconds * 1000 + left.components.attoseconds / 1_000_000_000_000_000
                timeout = Int32(clamping: max(0, ms + 1))
            } else {
                timeout = -1
            }
            do { try epoll.wait(into: &buffer, timeoutMilliseconds: timeout) } catch {
                logger.error("\(name): \(error)")
                return
            }
            // This round: the re-queued first, then those that fired, then scheduled, then due
            // timers. Index loops throughout: no iterator or closure on the per-packet path.
            round.removeAll(keepingCapacity: true)
            var k = 0
            while k < again.count { round.append(Turn(token: again[k], events: 0)); k += 1 }
            again.removeAll(keepingCapacity: true)
            var woken = false
            for i in 0..<buffer.count {
                let token = buffer.token(i)
                if token == Self.stopToken { return }
                if token == Self.wakeToken { woken = true; continue }
                if let j = indexInRound(token) {
                    round[j].events |= buffer.events(i)
                } else {
                    round.append(Turn(token: token, events: buffer.events(i)))
                }
            }
            if woken {
                wakeUp.testAndClear()
                scheduled.withLock { s in
                    pendingSchedule.append(contentsOf: s)
                    s.removeAll(keepingCapacity: true)
                }
                k = 0
                while k < pendingSchedule.count {
                    if indexInRound(pendingSchedule[k]) == nil { round.append(Turn(token: pendingSchedule[k], events: 0)) }
                    k += 1
                }
                pendingSchedule.removeAll(keepingCapacity: true)
            }
            if !timers.isEmpty {
                let now = ContinuousClock.now
                k = 0
                while k < timers.count {
                    if timers[k].due <= now && indexInRound(timers[k].token) == nil { round.append(Turn(token: timers[k].token, events: 0)) }
                    k += 1
                }
            }
            k = 0
            while k < round.count {
                let turn = round[k]
                k += 1
                guard let handler = handlers.withLock({ $0[turn.token] }) else { continue }
                var t = 0
                while t < timers.count {
                    if timers[t].token == turn.token { timers.remove(at: t); break }
                    t += 1
                }
                let next: Next
                switch handler.body {
                case .notifier(let notifier, let body):
                    notifier.testAndClear()
                    next = body()
                case .descriptor(_, let body):
                    next = body(Events(rawValue: turn.events))
                }
                switch next {
                case .idle: break
                case .again: again.append(turn.token)
                case .at(let instant): timers.append((turn.token, instant))
                }
            }
        }
    }
}
