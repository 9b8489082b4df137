import Logging
import SkiffQueue
import Synchronization

/// Settles the deliveries of one response exactly once: after the response was handed to the
/// client's connection they are completed (auto-acknowledge; in acknowledged mode the consumer
/// acks them later), otherwise released. If the response is dropped before its body is written
/// (the client vanished between the handler and the write), the release happens when this object
/// is freed, so the messages return to the head of their queue at once instead of after their lease.
final class DeliverySettlement<Backend: QueueBackend>: Sendable {
    let deliveries: [Delivery]
    private let backend: Backend
    private let logger: Logger
    private let tasks: SettlementTasks?
    private let settled = Atomic<Bool>(false)

    /// - Parameter tasks: where a release from `deinit` runs, so shutdown waits for it.
    init(deliveries: [Delivery], backend: Backend, logger: Logger, tasks: SettlementTasks? = nil) {
        self.deliveries = deliveries
        self.backend = backend
        self.logger = logger
        self.tasks = tasks
    }

    private func claimSettlement() -> Bool {
        settled.compareExchange(expected: false, desired: true, ordering: .acquiringAndReleasing).exchanged
    }

    /// The response reached the client's connection: auto-acknowledged deliveries are deleted.
    /// - Returns: how many were deleted.
    @discardableResult
    func complete() async -> Int {
        guard claimSettlement() else { return 0 }
        let automatic = deliveries.filter { !$0.isAcknowledgedMode }
        guard let first = automatic.first else { return 0 }
        do {
            if automatic.count == 1 {
                return try await backend.complete(first) ? 1 : 0
            } else {
                let results = try await backend.acknowledge(automatic.map(\.receipt), in: first.queue)
                let lost = results.filter { !$0 }.count
                if lost > 0 {
                    logger.error(
                        "claims were recovered before completion; those messages may be delivered twice",
                        metadata: ["queue.name": "\(first.queue)", "message.count": "\(lost)"]
                    )
                }
                return results.count - lost
            }
        } catch {
            logger.error(
                "could not delete delivered messages; they will be delivered again after their lease",
                metadata: ["queue.name": "\(first.queue)", "message.id": "\(first.message.id)", "error": "\(error)"]
            )
            return 0
        }
    }

    /// Gives up the deliveries without touching storage: the claims are no longer ours.
    func abandon() {
        _ = claimSettlement()
    }

    func release() async {
        guard claimSettlement() else { return }
        await Self.release(deliveries, backend: backend, logger: logger)
    }

    private static func release(_ deliveries: [Delivery], backend: Backend, logger: Logger) async {
        for delivery in deliveries {
            do {
                try await backend.release(delivery)
                logger.debug("returned an undelivered message to the head of its queue", metadata: ["message.id": "\(delivery.message.id)"])
            } catch {
                logger.error(
                    "could not return an undelivered message; it comes back when its lease expires",
                    metadata: ["queue.name": "\(delivery.queue)", "message.id": "\(delivery.message.id)", "error": "\(error)"]
                )
            }
        }
    }

    deinit {
        guard claimSettlement() else { return }
        let (deliveries, backend, logger) = (self.deliveries, self.backend, self.logger)
        if let tasks {
            tasks.run(on: nil) { await Self.release(deliveries, backend: backend, logger: logger) }
        } else {
            Task { await Self.release(deliveries, backend: backend, logger: logger) }
        }
    }
}
