import NIOCore

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
/// Implementations must behave identically (one contract suite runs against all of them):
/// - FIFO per queue: ``receive(from:timeout:)`` returns the oldest message.
/// - Exactly once: a message is claimed for one consumer only.
/// - No loss: a claimed message is deleted only by ``complete(_:)``; ``release(_:)`` puts it back
///   at the head of its queue; a claim never settled (crashed replica) comes back after its lease.
public protocol QueueBackend: Sendable {
    /// Appends `body` (already validated) to the tail of `queue`, creating the queue if needed.
    func send(_ body: ByteBuffer, to queue: QueueName) async throws -> SentMessage

    /// Claims the oldest message, waiting up to `timeout` for one to arrive.
    ///
    /// - Returns: `nil` when the wait ended with no message (never before `timeout`).
    /// - Throws: `CancellationError` when the task is cancelled (for example the client left);
    ///   no message is lost to a cancelled wait. ``QueueError`` when storage fails.
    func receive(from queue: QueueName, timeout: Duration) async throws -> Delivery?

    /// Deletes a delivered message for good, once its response has been handed to the client's
    /// connection.
    ///
    /// - Returns: `false` when the claim is no longer held (its lease expired and the message was
    ///   recovered): the message may be delivered again.
    @discardableResult
    func complete(_ delivery: Delivery) async throws -> Bool

    /// Puts a claimed message that did not reach its consumer back at the head of its queue.
    func release(_ delivery: Delivery) async throws

    /// The fence before a hand-out: `true` while the claim is still held. Free (no storage round
    /// trip) until half the lease has passed locally; after that it re-checks the claim and
    /// restarts its lease, because a stalled replica's claim may have been recovered and the
    /// message handed out elsewhere.
    func confirm(_ delivery: Delivery) async throws -> Bool

    func health() async -> BackendHealth
}
