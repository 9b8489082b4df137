public import Logging
public import ServiceLifecycle
import Synchronization

/// The settlements that run after their response has left: a transport deletes a delivered
/// message once its bytes are in the socket, and a dropped ``DeliveryLease`` releases its messages.
///
/// Graceful shutdown waits for them (as a ``Service`` placed after the HTTP server, so it stops
/// once the server has drained and before the backend and its Redis pool close): a settlement cut
/// off by shutdown would leave its message to come back after its lease, a duplicate.
public final class SettlementTasks: Service, Sendable {
    private let count = Mutex(0)
    private let drainTimeout: Duration
    private let logger: Logger

    /// - Parameter drainTimeout: how long shutdown waits for settlements still running; past it
    ///   they are abandoned (their messages come back after their lease).
    public init(drainTimeout: Duration = .seconds(10), logger: Logger) {
        self.drainTimeout = drainTimeout
        self.logger = logger
    }

    /// Settlements running now.
    public var running: Int { count.withLock { $0 } }

    /// Runs `work` on a new task that prefers `executor`, counted until it ends.
    public func run(on executor: (any TaskExecutor)?, _ work: @escaping @Sendable () async -> Void) {
        count.withLock { $0 += 1 }
        Task(executorPreference: executor) {
            await work()
            self.count.withLock { $0 -= 1 }
        }
    }

    public func run() async throws {
        try? await gracefulShutdown()
        let left = running
        guard left > 0 else { return }
        logger.notice("waiting for deliveries to settle before closing storage", metadata: ["delivery.count": "\(left)"])
        // Shutdown only: a short poll is simpler than waking on the last settlement, and bounded.
        let deadline = ContinuousClock.now + drainTimeout
        while running > 0, ContinuousClock.now < deadline { try? await Task.sleep(for: .milliseconds(5)) }
        let drained = running == 0
        if !drained {
            logger.error(
                "deliveries still settling at the drain deadline; their messages come back after their lease",
                metadata: ["delivery.count": "\(running)"]
            )
        }
    }
}
