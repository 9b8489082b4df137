import SkiffSupport

/// One sample of a queue's figures, a point of the console's charts (`GET /api/{queue}/history`).
///
/// Every replica samples every queue once per interval (``QueueBackend/recordHistory(_:of:interval:)``);
/// the backend keeps the first sample of each interval and forgets it after ``window``, so every
/// replica shows the same history. Rates are the differences of the running totals.
public struct QueueHistorySample: Sendable, Equatable {
    /// Start of the sample's interval, Unix milliseconds by the backend's clock (Redis `TIME`).
    public var atMilliseconds: Int64
    /// When it was recorded, by the same clock: somewhere in its interval (when the replica that
    /// recorded it sampled), so rates divide by the time between these, not between the starts.
    public var measuredAtMilliseconds: Int64
    public var ready: Int
    public var inFlight: Int
    public var delayed: Int
    /// Ready messages in the queue's dead-letter queue.
    public var deadLetter: Int
    /// Running totals (``QueueStats/totals``): they go down only when the queue is deleted.
    public var enqueued: Int64
    public var delivered: Int64
    public var acknowledged: Int64

    /// How far back a history reaches.
    public static let window: Duration = .seconds(3600)
    public static var windowMilliseconds: Int64 { window.milliseconds }
    /// Samples a queue's history holds at most, whatever the interval: an hour of 5-second ones,
    /// less than an hour at shorter intervals.
    public static let capacity = 720
    /// The shortest interval a backend samples at.
    public static let minimumInterval: Duration = .milliseconds(100)

    public init(
        atMilliseconds: Int64 = 0,
        measuredAtMilliseconds: Int64 = 0,
        ready: Int = 0,
        inFlight: Int = 0,
        delayed: Int = 0,
        deadLetter: Int = 0,
        enqueued: Int64 = 0,
        delivered: Int64 = 0,
        acknowledged: Int64 = 0
    ) {
        self.atMilliseconds = atMilliseconds
        self.measuredAtMilliseconds = measuredAtMilliseconds
        self.ready = ready
        self.inFlight = inFlight
        self.delayed = delayed
        self.deadLetter = deadLetter
        self.enqueued = enqueued
        self.delivered = delivered
        self.acknowledged = acknowledged
    }

    /// The figures of `stats`; the time is the backend's when it records the sample.
    public init(_ stats: QueueStats) {
        self.init(
            ready: stats.ready,
            inFlight: stats.inFlight,
            delayed: stats.delayed,
            deadLetter: stats.deadLetterReady,
            enqueued: stats.totals.enqueued,
            delivered: stats.totals.delivered,
            acknowledged: stats.totals.acknowledged
        )
    }

    /// The start of the interval `now` falls in.
    static func intervalStart(of now: Int64, interval: Duration) -> Int64 {
        let step = max(interval, minimumInterval).milliseconds
        return now - now % step
    }
}

/// Where a message found by ``QueueBackend/lookUp(_:in:)`` is in its queue's lifecycle.
public enum MessageState: String, Sendable, Equatable {
    /// Waiting to be received.
    case ready
    /// Waiting for its delay or a nack's backoff.
    case delayed
    /// Claimed by a consumer and not settled.
    case inFlight
}

/// The answer of ``QueueBackend/lookUp(_:in:)``.
public enum MessageLookup: Sendable {
    case found(QueueMessage, MessageState)
    /// Not found. `searchedAll` is `false` when the search stopped at its bound
    /// (``maximumScanned`` messages) before the end of the queue: the message may be further back.
    case notFound(searchedAll: Bool)

    /// Ready and delayed messages a lookup reads through at most (a Redis script without an index
    /// must stay short); in-flight ones are found by id at once.
    public static let maximumScanned = 5000
    /// Bytes of messages a lookup reads through at most.
    public static let maximumScannedBytes = 8 << 20
}
