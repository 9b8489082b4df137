/// Event counters of one queue.
public struct QueueCounters: Sendable, Equatable {
    /// Messages stored by sends (duplicates excluded).
    public var enqueued: Int64 = 0
    /// Hand-outs to consumers (a release, when the consumer never got it, takes one back).
    public var delivered: Int64 = 0
    /// Messages deleted after delivery: auto-acknowledged GETs and acks.
    public var acknowledged: Int64 = 0
    /// Returns to the queue after a nack or an expired visibility timeout or lease.
    public var retried: Int64 = 0
    /// Messages moved from this queue to its dead-letter queue.
    public var deadLettered: Int64 = 0
    /// Messages removed because they outlived the retention period.
    public var expired: Int64 = 0

    public init() {}
}

/// Exact figures of one queue at one moment (`GET /api/{queue}/stats`).
public struct QueueStats: Sendable, Equatable {
    /// Messages ready for delivery.
    public var ready: Int = 0
    /// Claimed and not settled.
    public var inFlight: Int = 0
    /// Waiting for their delay (or a nack's backoff) to pass.
    public var delayed: Int = 0
    /// Messages ready in the queue's dead-letter queue.
    public var deadLetterReady: Int = 0
    /// Age of the oldest ready message; `nil` when none is ready.
    public var oldestReadyAgeMilliseconds: Int64?
    /// Since the queue was created (purge keeps them; delete resets them).
    public var totals = QueueCounters()
    /// Events in the last complete minute, in 10-second steps (so up to 10 s behind).
    public var lastMinute = QueueCounters()

    public init() {}
}

/// A queue in the list of queues (`GET /queues`).
public struct QueueSummary: Sendable, Equatable {
    public var name: QueueName
    public var ready: Int
    public var inFlight: Int
    public var delayed: Int

    public init(name: QueueName, ready: Int, inFlight: Int, delayed: Int) {
        self.name = name
        self.ready = ready
        self.inFlight = inFlight
        self.delayed = delayed
    }
}
