import NIOCore

/// A stored message as a consumer receives it.
public struct QueueMessage: Sendable {
    public let id: String
    /// The body exactly as it was posted.
    public let body: ByteBuffer
    /// When the message was enqueued, in Unix milliseconds by the backend's clock (Redis `TIME`).
    public let enqueuedAtMilliseconds: Int64
    /// How many times the message has been handed to a consumer, this delivery included.
    public let receiveCount: Int

    public init(id: String, body: ByteBuffer, enqueuedAtMilliseconds: Int64, receiveCount: Int) {
        self.id = id
        self.body = body
        self.enqueuedAtMilliseconds = enqueuedAtMilliseconds
        self.receiveCount = receiveCount
    }
}

/// A message claimed for one consumer and not yet settled.
///
/// Exactly one of ``QueueBackend/complete(_:)`` (the response reached the client's connection) or
/// ``QueueBackend/release(_:)`` (it did not) should follow. If neither does, because the replica
/// died, the claim lease expires and the message returns to the head of its queue.
public struct Delivery: Sendable {
    public let queue: QueueName
    public let message: QueueMessage
    /// Identifies this delivery of the message; a later delivery of the same message has another.
    public let claimToken: Int
    /// When the claim was sent, by this process's monotonic clock: never later than the moment
    /// the backend started the lease, so local elapsed time never underestimates the lease's age.
    public let claimedAt: ContinuousClock.Instant
    public let lease: Duration

    public init(queue: QueueName, message: QueueMessage, claimToken: Int, claimedAt: ContinuousClock.Instant, lease: Duration) {
        self.queue = queue
        self.message = message
        self.claimToken = claimToken
        self.claimedAt = claimedAt
        self.lease = lease
    }

    /// True once half the lease has passed locally: check the claim with the backend before
    /// handing the message out, because it may have been recovered and delivered elsewhere.
    public var needsFenceCheck: Bool {
        ContinuousClock.now - claimedAt > lease / 2
    }
}

/// The answer to a successful send.
public struct SentMessage: Sendable, Equatable {
    public let id: String
    public let queue: QueueName
    public let enqueuedAtMilliseconds: Int64

    public init(id: String, queue: QueueName, enqueuedAtMilliseconds: Int64) {
        self.id = id
        self.queue = queue
        self.enqueuedAtMilliseconds = enqueuedAtMilliseconds
    }
}
