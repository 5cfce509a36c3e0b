import Logging
import Synchronization

/// One thread waiting on many eventfds (the virtqueues' ioeventfds, later tap fds) and running
/// each one's handler when it fires: where device work happens, off the vCPU threads.
/// QEMU: an IOThread's AioContext; kvmtool: `ioeventfd.c`'s epoll thread.
///
/// Fairness: a handler does one budgeted turn of work and says whether it wants another
/// (`Next.again`), a later one (`Next.at`, e.g. a rate limit), or none. The loop runs in rounds:
/// every handler that fired, is due, or asked again runs once per round, in that order, so a
/// flood on one queue delays another queue by at most one budget.
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

    private struct Handler {
        let notifier: EventNotifier
        let body: @Sendable () -> Next
    }

    private let epoll: Epoll
    private let stopNotifier: EventNotifier
    private let handlers = Mutex<[UInt64: Handler]>([:])
    private let nextToken = Atomic<UInt64>(1)
    private let logger: Logger
    private let running = Atomic<Bool>(false)
    private let name: String

    public init(name: String = "iothread", logger: Logger = Logger(label: "vmm.iothread")) throws(SystemError) {
        epoll = try Epoll()
        stopNotifier = try EventNotifier()
        self.logger = logger
        self.name = name
        try epoll.add(stopNotifier.fileDescriptor, token: 0)
    }

    /// Runs `handler` on this thread each time `notifier` is signalled (after clearing it), and
    /// again as the handler's `Next` asks.
    public func watch(_ notifier: EventNotifier, handler: @escaping @Sendable () -> Next) throws(SystemError) {
        let token = nextToken.add(1, ordering: .relaxed).oldValue
        handlers.withLock { $0[token] = Handler(notifier: notifier, body: handler) }
        try epoll.add(notifier.fileDescriptor, token: token)
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

    private func loop() {
        var again: [UInt64] = []                                   // asked for another turn
        var timers: [UInt64: ContinuousClock.Instant] = [:]        // asked for a later turn
        while true {
            let timeout: Int32
            if !again.isEmpty {
                timeout = 0
            } else if let soonest = timers.values.min() {
                let left = ContinuousClock.now.duration(to: soonest)
                let ms = left.components.seconds * 1000 + left.components.attoseconds / 1_000_000_000_000_000
                timeout = Int32(clamping: max(0, ms + 1))
            } else {
                timeout = -1
            }
            let events: [Epoll.Event]
            do { events = try epoll.wait(timeoutMilliseconds: timeout) } catch {
                logger.error("\(name): \(error)")
                return
            }
            if events.contains(where: { $0.token == 0 }) { return }
            // This round: the re-queued first, then those that fired, then due timers.
            var round = again
            again.removeAll(keepingCapacity: true)
            for e in events where !round.contains(e.token) { round.append(e.token) }
            let now = ContinuousClock.now
            for (token, due) in timers where due <= now && !round.contains(token) { round.append(token) }
            for token in round {
                guard let handler = handlers.withLock({ $0[token] }) else { continue }
                handler.notifier.testAndClear()
                timers[token] = nil
                switch handler.body() {
                case .idle: break
                case .again: again.append(token)
                case .at(let instant): timers[token] = instant
                }
            }
        }
    }
}
