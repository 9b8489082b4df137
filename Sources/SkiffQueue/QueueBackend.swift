public import NIOCore

/// What a backend reports about its own state for `/health` and `/ready`.
public struct BackendHealth: Sendable, Equatable {
    public var isHealthy: Bool
    /// `memory` or `redis`.
    public var backend: String
    /// Extra fields for the health document (connection state, last error...).
    public var details: [String: String]

    public init(isHealthy: Bool, backend: String, details: [String: String] = [:]) {
        self.isHealthy = isHealthy
        self.backend = backend
        self.details = details
    }
}

/// The queue semantics Skiff serves, independent of HTTP and of where messages are stored.
///
/// Implementations must behave identically (one contract suite runs against all of them); the
/// rules are written down in docs/message-lifecycle.md:
/// - Order: higher priority first, FIFO within a priority. A message that comes back (release,
///   nack, expired visibility) goes to the head of its priority, in its original order.
/// - Exactly once: a message is claimed for one consumer at a time; a claim is identified by its
///   claim token (``Receipt``), and a stale token can never settle a later claim.
/// - No loss: a claimed message is deleted only by ``complete(_:)`` or an ack; an unsettled claim
///   comes back after its lease (the visibility timeout in acknowledged mode).
/// - Every state change is atomic; a failed send stores nothing.
public protocol QueueBackend: Sendable {
    /// Stores `bodies` (already validated JSON) in `queue`, all or none, creating the queue if
    /// needed. Returns one ``SentMessage`` per body, in order.
    ///
    /// - Throws: ``QueueError`` `.queueFull` when the queue's `maxDepth` would be passed,
    ///   `.invalidArgument` for a delay beyond the retention period, `.unavailable` /
    ///   `.insufficientStorage` when storage fails. Nothing is stored in any of these cases.
    func send(_ bodies: [ByteBuffer], to queue: QueueName, options: SendOptions) async throws -> [SentMessage]

    /// Claims messages for one hand-out and fences them (see ``DeliveryLease`` for the rest of
    /// the lifecycle). `nil` when the wait ended with no message, or every claim was lost to a stall.
    ///
    /// - Throws: `CancellationError` when the task is cancelled (for example the client left);
    ///   a message claimed meanwhile goes back at once. ``QueueError`` when storage fails.
    func deliver(_ request: DeliveryRequest, context: DeliveryContext) async throws -> DeliveryLease?

    /// Acks: deletes each message whose receipt still holds its claim.
    /// - Returns: per receipt, whether it was acked (`false`: unknown or stale).
    func acknowledge(_ receipts: [Receipt], in queue: QueueName) async throws -> [Bool]

    /// Whether each receipt still holds its claim: `false` once its message was acked, nacked,
    /// released or made visible, or its lease ran out (it may be with another consumer then).
    /// Changes nothing. A stream that hands receipts to a client who settles them elsewhere (an
    /// event-stream consumer acks over HTTP, maybe on another replica) learns from it which
    /// places in its window are free again.
    func claimsHeld(_ receipts: [Receipt], in queue: QueueName) async throws -> [Bool]

    /// Nacks: the message comes back after `delay` (`nil`: the queue's retry backoff; zero: at
    /// once, at the head), or moves to the dead-letter queue if it has used `maxReceiveCount`.
    /// - Returns: `false` for an unknown or stale receipt.
    func reject(_ receipt: Receipt, in queue: QueueName, delay: Duration?, reason: String?) async throws -> Bool

    /// Restarts the visibility timeout of a held claim at `timeout` from now. Zero makes the
    /// message visible at once, as a nack without delay does.
    /// - Returns: `false` for an unknown or stale receipt.
    func changeVisibility(_ receipt: Receipt, in queue: QueueName, timeout: Duration) async throws -> Bool

    /// The queue's settings, defaults filled in.
    func settings(of queue: QueueName) async throws -> QueueSettings

    /// Replaces the queue's settings (already validated), creating the queue if needed.
    func updateSettings(_ settings: QueueSettings, of queue: QueueName) async throws

    /// Moves up to `max` ready messages from the head of `queue`'s dead-letter queue to the tail
    /// of `queue`, in one atomic step, with a fresh receive count.
    /// - Returns: how many moved.
    func redrive(into queue: QueueName, max: Int) async throws -> Int

    /// Exact figures at O(1) storage cost (no scan of the queue).
    func stats(of queue: QueueName) async throws -> QueueStats

    /// Queues that exist (used or configured and not deleted), by name.
    func queues() async throws -> [QueueSummary]

    /// The first `limit` ready messages, in the order receives would take them (priority 9 to 0,
    /// oldest first), without changing anything: no receive counted, no lease, nothing promoted
    /// or expired. Messages past retention are left out; the answer stops before a message that
    /// would take the bodies past `maximumBytes` (one message always fits). For people (the
    /// console, `GET /api/{queue}/messages?peek=N`): a consumer acting on what it peeked would
    /// race the others.
    func peek(_ queue: QueueName, limit: Int, maximumBytes: Int) async throws -> [QueueMessage]

    /// The message `id` of `queue`, wherever it is (ready, delayed or in flight), without changing
    /// anything. For people (the console, `GET /api/{queue}/messages/{id}`): in flight it is found
    /// at once; ready and delayed ones are searched, through at most
    /// ``MessageLookup/maximumScanned`` messages.
    func lookUp(_ id: String, in queue: QueueName) async throws -> MessageLookup

    /// Records `sample` as `queue`'s figures for the current `interval` of the backend's clock,
    /// unless a sample of that interval is there already (every replica samples every queue; the
    /// first wins), and forgets the samples older than ``QueueHistorySample/window`` or past
    /// ``QueueHistorySample/capacity``.
    func recordHistory(_ sample: QueueHistorySample, of queue: QueueName, interval: Duration) async throws

    /// `queue`'s samples of the last ``QueueHistorySample/window``, oldest first.
    func history(of queue: QueueName) async throws -> [QueueHistorySample]

    /// Takes up to `max` ids of messages deleted for good without an ack (purged, deleted with their
    /// queue, expired) whose bodies the payload store holds: they were set aside in the same step
    /// that deleted the messages, so an object is only ever deleted after its message. The caller
    /// deletes the objects; one it does not (it died) is left to the payload sweep.
    func takeBuriedPayloads(max: Int) async throws -> [String]

    /// Changes by `delta` the count of messages that share the payload object of `id` (the copies
    /// of a topic publish, ``MessageID/isShared(_:)``), and keeps the count for `keepFor` from now
    /// (the payload retention: past it the sweep deletes the object anyway). The publisher raises
    /// it to at least the copies it stores before storing them; each copy deleted lowers it by one.
    /// - Returns: the count after the change. At 0 the count is forgotten and the caller deletes
    ///   the object. `nil` when a lowering found no count (never raised, or kept past `keepFor`):
    ///   the caller must leave the object to the sweep, since it cannot know that no copy is left.
    func adjustPayloadReferences(of id: String, by delta: Int, keepFor: Duration) async throws -> Int?

    /// Deletes every message of the queue (ready, delayed and in flight); settings and totals stay.
    /// - Returns: how many messages were deleted.
    @discardableResult
    func purge(_ queue: QueueName) async throws -> Int

    /// Deletes the queue: its messages, settings, counters, idempotency keys and history.
    /// - Returns: `false` when there was no such queue.
    @discardableResult
    func delete(_ queue: QueueName) async throws -> Bool

    func health() async -> BackendHealth

    /// `true` only when this process can prove `queue` has had no ready message since its last
    /// claim here found it empty (and a wake-up would have told it otherwise): a consumer that is
    /// going to wait anyway can skip claiming from it. `false` means "maybe not empty".
    func isKnownEmpty(_ queue: QueueName) -> Bool
}

extension QueueBackend {
    public func isKnownEmpty(_ queue: QueueName) -> Bool { false }

    /// Stores one message with default options.
    public func send(_ body: ByteBuffer, to queue: QueueName, options: SendOptions = SendOptions()) async throws -> SentMessage {
        guard let sent = try await send([body], to: queue, options: options).first else {
            throw QueueError.internalError("a send of one message returned no id")
        }
        return sent
    }
}

extension ClaimingBackend {
    /// Claims the oldest message in auto-acknowledge mode, waiting up to `timeout`.
    public func receive(from queue: QueueName, timeout: Duration) async throws -> Delivery? {
        try await receive(from: queue, max: 1, timeout: timeout, mode: .autoAcknowledge).first
    }
}
