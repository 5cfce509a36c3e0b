import Foundation
import Logging
import Synchronization
import VMMSys

/// One thread waiting on many eventfds (the virtqueues' ioeventfds) and running each one's
/// handler when it fires: where device work happens, off the vCPU threads.
/// QEMU: an IOThread's AioContext; kvmtool: `ioeventfd.c`'s epoll thread.
public final class IOThread: Sendable {
    private let epoll: Epoll
    private let stopNotifier: EventNotifier
    private let handlers = Mutex<[UInt64: @Sendable () -> Void]>([:])
    private let nextToken = Atomic<UInt64>(1)
    private let logger: Logger
    private let running = Atomic<Bool>(false)

    public init(name: String = "iothread", logger: Logger = Logger(label: "vmm.iothread")) throws(SystemError) {
        epoll = try Epoll()
        stopNotifier = try EventNotifier()
        self.logger = logger
        try epoll.add(stopNotifier.fileDescriptor, token: 0)
    }

    /// Runs `handler` on this thread each time `notifier` is signalled (after clearing it).
    public func watch(_ notifier: EventNotifier, handler: @escaping @Sendable () -> Void) throws(SystemError) {
        let token = nextToken.add(1, ordering: .relaxed).oldValue
        handlers.withLock { $0[token] = { notifier.testAndClear(); handler() } }
        try epoll.add(notifier.fileDescriptor, token: token)
    }

    /// Starts the thread.
    public func start() {
        guard !running.exchange(true, ordering: .acquiringAndReleasing) else { return }
        let t = Thread { [self] in loop() }
        t.name = "iothread"
        t.start()
    }

    /// Asks the thread to finish.
    public func stop() { stopNotifier.set() }

    private func loop() {
        while true {
            let events: [Epoll.Event]
            do { events = try epoll.wait() } catch {
                logger.error("\(error)")
                return
            }
            for e in events {
                if e.token == 0 { return }
                if let h = handlers.withLock({ $0[e.token] }) { h() }
            }
        }
    }
}
