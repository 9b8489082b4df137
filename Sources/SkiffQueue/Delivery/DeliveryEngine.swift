public import Logging

/// What ``QueueBackend/deliver(_:context:)`` needs from the transport besides the request.
public struct DeliveryContext: Sendable {
    public var observer: (any DeliveryObserver)?
    /// Where a dropped lease's release runs, so that shutdown waits for it.
    public var settlements: SettlementTasks?
    public var logger: Logger

    public init(observer: (any DeliveryObserver)? = nil, settlements: SettlementTasks? = nil, logger: Logger) {
        self.observer = observer
        self.settlements = settlements
        self.logger = logger
    }
}

/// The steps a backend implements so that the one delivery lifecycle (``deliver(_:context:)``)
/// can run over it. Transports never call them; the contract tests do.
public protocol ClaimingBackend: QueueBackend {
    /// Claims up to `max` messages from the head of `queue`. When none is ready, waits up to
    /// `timeout` for one and returns it alone.
    ///
    /// - Returns: an empty array when the wait ended with no message (never before `timeout`).
    /// - Throws: `CancellationError` when the task is cancelled (for example the client left);
    ///   no message is lost to a cancelled wait. ``QueueError`` when storage fails.
    func receive(from queue: QueueName, max: Int, timeout: Duration, mode: ReceiveMode) async throws -> [Delivery]

    /// Claims the ready messages at the head of `queue`, without waiting: up to `max`, and past
    /// the first, no message that would take the claimed bytes beyond `maxBytes` (`nil`: no limit).
    func claimReady(from queue: QueueName, max: Int, maxBytes: Int?, mode: ReceiveMode) async throws -> ClaimedMessages

    /// The waiting half of ``receive(from:max:timeout:mode:)``: waits up to `timeout` for one
    /// message without claiming first. For a caller whose claim just found the queue empty, so a
    /// long-poll costs one claim, not two. A message that arrives between the two calls is not
    /// missed: registering the wait looks for messages again.
    func wait(for queue: QueueName, timeout: Duration, mode: ReceiveMode) async throws -> [Delivery]

    /// Deletes a message delivered in auto-acknowledge mode, once its response was handed to the
    /// client's connection. Retries through a storage outage until the lease ends.
    ///
    /// - Returns: `false` when the claim is no longer held (its lease expired and the message was
    ///   recovered): the message may be delivered again.
    @discardableResult
    func complete(_ delivery: Delivery) async throws -> Bool

    /// Puts a claimed message that did not reach its consumer back at the head of its queue, with
    /// the receive taken back.
    func release(_ delivery: Delivery) async throws

    /// ``release(_:)-(Delivery)`` for several claims at once (a batch cut short by its byte limit
    /// gives the rest back): each at its place at the head of its queue, in one storage round trip
    /// per queue where the backend can; one that fails leaves the others tried.
    func release(_ deliveries: [Delivery]) async throws

    /// The fence before a hand-out: `true` while the claim is still held. Free (no storage round
    /// trip) until half the lease has passed locally; after that it re-checks the claim and
    /// restarts its lease, because a stalled replica's claim may have been recovered and the
    /// message handed out elsewhere.
    func confirm(_ delivery: Delivery) async throws -> Bool
}

extension ClaimingBackend {
    /// One by one, in order; one that fails leaves the others tried, and is thrown after them.
    public func release(_ deliveries: [Delivery]) async throws {
        var failure: (any Error)?
        for delivery in deliveries {
            do { try await release(delivery) } catch { failure = failure ?? error }
        }
        if let failure { throw failure }
    }

    /// The delivery lifecycle up to the hand-out, the same for every transport: claim (waiting up
    /// to the request's timeout), give back what a cancelled caller can no longer take, and fence.
    /// A single message goes through ``receive(from:max:timeout:mode:)``, where the backend knows
    /// when a wait needs no claim of its own; a batch claims what is ready under its byte limit,
    /// or waits for one message and lingers for more.
    public func deliver(_ request: DeliveryRequest, context: DeliveryContext) async throws -> DeliveryLease? {
        let waits = request.timeout > .zero
        if waits { context.observer?.waitStarted() }
        defer { if waits { context.observer?.waitFinished() } }
        var claimed: ClaimedMessages
        if request.max == 1 {
            claimed = ClaimedMessages(deliveries: try await receive(from: request.queue, max: 1, timeout: request.timeout, mode: request.mode))
        } else {
            // A consumer that is going to wait on a queue the backend knows to be empty waits at
            // once (a poll claims: it must see a message whose wake-up is still on its way).
            claimed =
                waits && isKnownEmpty(request.queue)
                ? ClaimedMessages(deliveries: [])
                : try await claimReady(from: request.queue, max: request.max, maxBytes: request.maxBytes, mode: request.mode)
            if claimed.deliveries.isEmpty, waits {
                claimed.deliveries = try await wait(for: request.queue, timeout: request.timeout, mode: request.mode)
                if let first = claimed.deliveries.first {
                    // The first message had to be waited for: more may be on their way.
                    try? await Task.sleep(for: request.linger)
                    let room = request.maxBytes.map { $0 - first.message.body.readableBytes }
                    if let room, room <= 0 {
                        claimed.stoppedAtByteLimit = true
                    } else {
                        // The extra messages are a bonus: if their claim fails (or the caller was
                        // cancelled meanwhile, which gives them back), the message already held is
                        // still delivered or, below, released; never left to its lease.
                        do {
                            let more = try await claimReady(from: request.queue, max: request.max - 1, maxBytes: room, mode: request.mode)
                            claimed.deliveries += more.deliveries
                            claimed.stoppedAtByteLimit = more.stoppedAtByteLimit
                        } catch {
                            context.logger.debug("a batch took only the message it waited for", metadata: ["error": "\(error)"])
                        }
                    }
                }
            }
        }
        guard !claimed.deliveries.isEmpty else { return nil }
        // The caller was cancelled (its client left) while the claim was on its way: nobody takes them.
        if Task.isCancelled {
            await DeliveryLease.release(claimed.deliveries, backend: self, logger: context.logger)
            throw CancellationError()
        }
        // The fence: if this replica stalled past half the lease since the claim, a message may
        // have been recovered and handed out elsewhere; then it is not ours to give.
        var held: [Delivery] = []
        for delivery in claimed.deliveries where try await confirm(delivery) { held.append(delivery) }
        guard !held.isEmpty else { return nil }
        claimed.deliveries = held
        return DeliveryLease(claimed, backend: self, logger: context.logger, settlements: context.settlements)
    }
}
