import Logging
import SkiffQueue
import Synchronization

/// Settles one delivery exactly once: completed after the response was handed to the client's
/// connection, released otherwise. If the response is dropped before its body is written (the
/// client vanished between the handler and the write), the release happens when this object is
/// freed, so the message returns to the head of its queue at once instead of after its lease.
final class DeliverySettlement<Backend: QueueBackend>: Sendable {
    let delivery: Delivery
    private let backend: Backend
    private let logger: Logger
    private let settled = Atomic<Bool>(false)

    init(delivery: Delivery, backend: Backend, logger: Logger) {
        self.delivery = delivery
        self.backend = backend
        self.logger = logger
    }

    private func claimSettlement() -> Bool {
        settled.compareExchange(expected: false, desired: true, ordering: .acquiringAndReleasing).exchanged
    }

    func complete() async {
        guard claimSettlement() else { return }
        do {
            try await backend.complete(delivery)
        } catch {
            logger.error(
                "could not delete a delivered message; it will be delivered again after its lease",
                metadata: ["queue.name": "\(delivery.queue)", "message.id": "\(delivery.message.id)", "error": "\(error)"]
            )
        }
    }

    /// Gives up the delivery without touching storage: the claim is no longer ours.
    func abandon() {
        _ = claimSettlement()
    }

    func release() async {
        guard claimSettlement() else { return }
        await Self.release(delivery, backend: backend, logger: logger)
    }

    private static func release(_ delivery: Delivery, backend: Backend, logger: Logger) async {
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

    deinit {
        guard claimSettlement() else { return }
        let (delivery, backend, logger) = (self.delivery, self.backend, self.logger)
        Task { await Self.release(delivery, backend: backend, logger: logger) }
    }
}
