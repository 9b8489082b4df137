/// A queue's figures, from `GET /api/{q}/stats` (all of them) or `GET /queues` (the depths).
public struct QueueStatistics: Sendable, Equatable {
    public let queue: String
    /// Messages waiting to be delivered.
    public let ready: Int
    /// Delivered and not yet settled.
    public let inFlight: Int
    /// Waiting for their delay.
    public let delayed: Int
    /// In the dead-letter queue, when the answer has it.
    public let deadLetter: Int?
    /// Age of the oldest ready message, when the answer has it.
    public let oldestAgeMilliseconds: Int?
    /// Totals since the queue was created (`enqueued`, `delivered`, `acked`, `retried`,
    /// `deadLettered`, `expired`), when the answer has them.
    public let totals: [String: Int]

    public init(queue: String, ready: Int, inFlight: Int, delayed: Int, deadLetter: Int? = nil, oldestAgeMilliseconds: Int? = nil, totals: [String: Int] = [:])
    {
        self.queue = queue
        self.ready = ready
        self.inFlight = inFlight
        self.delayed = delayed
        self.deadLetter = deadLetter
        self.oldestAgeMilliseconds = oldestAgeMilliseconds
        self.totals = totals
    }

    init(document: [String: Any]) {
        self.init(
            queue: (document["queue"] as? String) ?? (document["name"] as? String) ?? "",
            ready: (document["ready"] as? Int) ?? 0,
            inFlight: (document["inFlight"] as? Int) ?? 0,
            delayed: (document["delayed"] as? Int) ?? 0,
            deadLetter: document["deadLetter"] as? Int,
            oldestAgeMilliseconds: document["oldestAgeMs"] as? Int,
            totals: (document["totals"] as? [String: Int]) ?? [:]
        )
    }
}
