import Logging
import Synchronization

/// Messages claimed for one hand-out (a response, a stream frame), and the only way to settle them:
/// exactly one of ``delivered()``, ``release()`` or ``abandon()`` takes effect, whichever comes first.
///
/// The lifecycle every transport follows: ``QueueBackend/deliver(_:observer:)`` claims and fences
/// (a claim a stall may have lost is never handed out); the transport checks ``isStillHeld()``
/// right before it writes the bodies (the fence again, free unless the replica stalled); once the
/// bytes are in the client's socket it calls ``delivered()`` (auto-acknowledge: the messages are
/// deleted; acknowledged mode: the consumer acks later), and if they never get there,
/// ``release()`` (back to the head of their queue at once). A lease dropped unsettled releases
/// its messages, on the settlement tasks so that shutdown waits for it.
public final class DeliveryLease: Sendable {
    /// Oldest first.
    public let deliveries: [Delivery]
    /// A batch stopped at its byte limit: more may be ready.
    public let stoppedAtByteLimit: Bool
    /// The queue the consumer asked for (for a partitioned queue's message, not its partition).
    public var queue: QueueName { deliveries[0].queue.logical }

    private let backend: any ClaimingBackend
    private let logger: Logger
    private let settlements: SettlementTasks?
    private let settled = Atomic<Bool>(false)
    /// Runs after ``delivered()`` deleted messages, with those it deleted.
    private let afterDeletion: (@Sendable ([Delivery]) async -> Void)?
    /// Runs once, when the lease is settled whichever way (its bodies are no longer needed).
    private let onSettled: (@Sendable () -> Void)?

    init(
        _ claimed: ClaimedMessages, backend: any ClaimingBackend, logger: Logger, settlements: SettlementTasks?,
        afterDeletion: (@Sendable ([Delivery]) async -> Void)? = nil,
        onSettled: (@Sendable () -> Void)? = nil
    ) {
        precondition(!claimed.deliveries.isEmpty, "a lease holds at least one delivery")
        self.deliveries = claimed.deliveries
        self.stoppedAtByteLimit = claimed.stoppedAtByteLimit
        self.backend = backend
        self.logger = logger
        self.settlements = settlements
        self.afterDeletion = afterDeletion
        self.onSettled = onSettled
    }

    /// A lease that takes over these claims with other deliveries of the same messages (their
    /// bodies read from the payload store), or fewer of them: those left out go back to the head of
    /// their queue at once. This lease is settled without touching storage; the new one settles.
    /// - Parameters:
    ///   - afterDeletion: runs once ``delivered()`` has deleted messages, with them.
    ///   - onSettled: runs once the new lease is settled, whichever way (or at once, if it holds nothing).
    func replaced(
        by kept: ClaimedMessages, releasing dropped: [Delivery], afterDeletion: (@Sendable ([Delivery]) async -> Void)?,
        onSettled: (@Sendable () -> Void)? = nil
    ) async -> DeliveryLease? {
        guard claimSettlement() else {
            onSettled?()
            return nil
        }
        if !dropped.isEmpty { await Self.release(dropped, backend: backend, logger: logger) }
        guard !kept.deliveries.isEmpty else {
            onSettled?()
            return nil
        }
        return DeliveryLease(kept, backend: backend, logger: logger, settlements: settlements, afterDeletion: afterDeletion, onSettled: onSettled)
    }

    private func claimSettlement() -> Bool {
        guard settled.compareExchange(expected: false, desired: true, ordering: .acquiringAndReleasing).exchanged else { return false }
        onSettled?()
        return true
    }

    /// The fence before the write: `true` while every claim is still held. When one was lost (the
    /// replica stalled past half its lease and the message may be with another consumer now) the
    /// lease is abandoned and nothing may be written.
    public func isStillHeld() async throws -> Bool {
        for delivery in deliveries where !(try await backend.confirm(delivery)) {
            abandon()
            return false
        }
        return true
    }

    /// The bytes reached the client's socket: auto-acknowledged deliveries are deleted.
    /// - Returns: how many were deleted (fewer than delivered when a claim was recovered meanwhile).
    @discardableResult
    public func delivered() async -> Int {
        guard claimSettlement() else { return 0 }
        let automatic = deliveries.filter { !$0.isAcknowledgedMode }
        guard let first = automatic.first else { return 0 }
        do {
            if automatic.count == 1 {
                guard try await backend.complete(first) else { return 0 }
                await afterDeletion?([first])
                return 1
            }
            let results = try await backend.acknowledge(automatic.map(\.receipt), in: first.queue)
            if let afterDeletion { await afterDeletion(zip(automatic, results).filter(\.1).map(\.0)) }
            let lost = results.filter { !$0 }.count
            if lost > 0 {
                logger.error(
                    "claims were recovered before completion; those messages may be delivered twice",
                    metadata: ["queue.name": "\(first.queue)", "message.count": "\(lost)"]
                )
            }
            return results.count - lost
        } catch {
            logger.error(
                "could not delete delivered messages; they will be delivered again after their lease",
                metadata: ["queue.name": "\(first.queue)", "message.id": "\(first.message.id)", "error": "\(error)"]
            )
            return 0
        }
    }

    /// Nobody received the messages: they go back to the head of their queue, receive taken back.
    public func release() async {
        guard claimSettlement() else { return }
        await Self.release(deliveries, backend: backend, logger: logger)
    }

    /// Gives up the claims without touching storage: they are no longer ours (the fence failed).
    public func abandon() {
        _ = claimSettlement()
    }

    /// Runs on a task of its own, which the caller's cancellation does not reach: a caller
    /// cancelled because its client left must still give the messages back (a cancelled Redis
    /// command would leave them to their lease).
    static func release(_ deliveries: [Delivery], backend: any ClaimingBackend, logger: Logger) async {
        await Task { await releaseNow(deliveries, backend: backend, logger: logger) }.value
    }

    /// One release of them all: a backend releases each queue's together (a lease's deliveries
    /// are of one queue but for a partitioned queue's) and tries every queue even when one fails.
    private static func releaseNow(_ deliveries: [Delivery], backend: any ClaimingBackend, logger: Logger) async {
        guard !deliveries.isEmpty else { return }
        let queues = Set(deliveries.map(\.queue.rawValue)).sorted().joined(separator: ",")
        do {
            try await backend.release(deliveries)
            logger.debug(
                "returned undelivered messages to the head of their queue",
                metadata: ["queue.name": "\(queues)", "message.count": "\(deliveries.count)"])
        } catch {
            logger.error(
                "could not return undelivered messages; they come back when their lease expires",
                metadata: ["queue.name": "\(queues)", "message.ids": "\(deliveries.map(\.message.id))", "error": "\(error)"]
            )
        }
    }

    deinit {
        guard claimSettlement() else { return }
        let (deliveries, backend, logger) = (self.deliveries, self.backend, self.logger)
        if let settlements {
            settlements.run(on: nil) { await Self.releaseNow(deliveries, backend: backend, logger: logger) }
        } else {
            Task { await Self.releaseNow(deliveries, backend: backend, logger: logger) }
        }
    }
}
