/// The per-queue delivery settings (`GET`/`PUT /api/{queue}/config`). Every field has a default,
/// so a queue that was never configured behaves as ``QueueSettings/init()`` describes.
///
/// Limits follow SQS where SQS has one (visibility up to 12 h, retention 1 min to 14 days) and go
/// further where SQS is weak (delay up to the retention period instead of 15 min).
public struct QueueSettings: Sendable, Equatable {
    /// How long a message received in acknowledged mode without its own `visibility` stays
    /// invisible to other consumers. 1 ms to 12 h; default 30 s.
    public var visibilityTimeoutMilliseconds: Int64
    /// After this many receives without an ack, a message moves to the dead-letter queue instead
    /// of returning to this one. `nil` (the default): no limit. 1 to 1000.
    public var maxReceiveCount: Int?
    /// Where dead letters go; `nil` means `{queue}-dlq` (see ``deadLetterQueue(of:)``).
    public var deadLetterQueue: QueueName?
    /// The first retry delay of a nack without its own `delay`; doubles per receive, up to
    /// ``retryBackoffCapMilliseconds``, with equal jitter (between half and all of it). 0 to 12 h;
    /// default 1 s.
    public var retryBackoffBaseMilliseconds: Int64
    /// The longest backoff delay. From the base to 12 h; default 5 min.
    public var retryBackoffCapMilliseconds: Int64
    /// Messages older than this (since they entered the queue) are removed and counted as expired,
    /// never delivered. 1 min to 14 days; default 4 days.
    public var retentionMilliseconds: Int64
    /// The delay of a message sent without its own. 0 to the retention period; default 0.
    public var delayMilliseconds: Int64
    /// At most this many messages (ready, delayed and in flight) are stored; a send beyond it is
    /// refused whole. `nil` (the default): no limit. 1 to 100 000 000.
    public var maxDepth: Int?
    /// How long an `Idempotency-Key` is remembered. 1 ms to 7 days; default 5 min.
    public var dedupWindowMilliseconds: Int64
    /// Sub-queues the queue is spread over (``PartitionedQueues``): 1 (the default) to 64. It can
    /// only grow; FIFO holds within a partition.
    public var partitions: Int
    /// The largest message body a send to this queue may carry; `nil` (the default): the
    /// replica's limit (`MAX_MESSAGE_BYTES`, or `PAYLOADS_MAX_MESSAGE_BYTES` with a payload
    /// store). 1 byte to 32 MiB; a replica never takes more than its own limit, whatever this says.
    public var maxMessageBytes: Int?
    /// Bodies larger than this are kept in the payload store, Redis keeping a pointer; `nil` (the
    /// default): the replica's threshold (`PAYLOADS_OFFLOAD_THRESHOLD_BYTES`). Only with a
    /// payload store; at most the largest body Redis keeps (`MAX_MESSAGE_BYTES`).
    public var offloadThresholdBytes: Int?

    public static let maximumVisibilityTimeoutMilliseconds: Int64 = 12 * 3_600_000
    /// The shortest visibility a receive may ask for: a claim held for less than the time it
    /// takes to send its message is recovered before the bytes leave, and the fence must then
    /// cut the response off (a client saw its connection closed without an answer).
    public static let minimumReceiveVisibilityMilliseconds: Int64 = 100
    public static let minimumRetentionMilliseconds: Int64 = 60_000
    public static let maximumRetentionMilliseconds: Int64 = 14 * 86_400_000
    public static let maximumReceiveCountLimit = 1000
    public static let maximumDepthLimit = 100_000_000
    public static let maximumDedupWindowMilliseconds: Int64 = 7 * 86_400_000
    /// 32 MiB, Cloud Run's HTTP/1 request limit: the most ``maxMessageBytes`` and
    /// ``offloadThresholdBytes`` may say.
    public static let maximumMessageBytesLimit = 32 << 20

    public init(
        visibilityTimeoutMilliseconds: Int64 = 30_000,
        maxReceiveCount: Int? = nil,
        deadLetterQueue: QueueName? = nil,
        retryBackoffBaseMilliseconds: Int64 = 1_000,
        retryBackoffCapMilliseconds: Int64 = 300_000,
        retentionMilliseconds: Int64 = 4 * 86_400_000,
        delayMilliseconds: Int64 = 0,
        maxDepth: Int? = nil,
        dedupWindowMilliseconds: Int64 = 300_000,
        partitions: Int = 1,
        maxMessageBytes: Int? = nil,
        offloadThresholdBytes: Int? = nil
    ) {
        self.visibilityTimeoutMilliseconds = visibilityTimeoutMilliseconds
        self.maxReceiveCount = maxReceiveCount
        self.deadLetterQueue = deadLetterQueue
        self.retryBackoffBaseMilliseconds = retryBackoffBaseMilliseconds
        self.retryBackoffCapMilliseconds = retryBackoffCapMilliseconds
        self.retentionMilliseconds = retentionMilliseconds
        self.delayMilliseconds = delayMilliseconds
        self.maxDepth = maxDepth
        self.dedupWindowMilliseconds = dedupWindowMilliseconds
        self.partitions = partitions
        self.maxMessageBytes = maxMessageBytes
        self.offloadThresholdBytes = offloadThresholdBytes
    }

    /// Queues a service holds at most unless configured otherwise (`MAX_QUEUES`).
    public static let defaultMaximumQueues = 10_000

    /// The dead-letter queue of `queue`: the configured one, or `{queue}-dlq` (the name shortened
    /// to fit the 128-character limit). A partition's is the same partition of its queue's.
    public func deadLetterQueue(of queue: QueueName) -> QueueName {
        if let deadLetterQueue { return deadLetterQueue.partition(queue.partitionIndex) }
        let base = queue.logical.rawValue.prefix(QueueName.maximumLength - 4)
        return QueueName(base + "-dlq")!.partition(queue.partitionIndex)
    }

    /// The delay of a nack without its own, after the message's `receiveCount`-th receive:
    /// `base * 2^(receiveCount-1)` capped, then scaled into its upper half by `jitter` in [0, 1).
    public func retryDelayMilliseconds(receiveCount: Int, jitter: Double) -> Int64 {
        let doublings = min(max(receiveCount - 1, 0), 40)
        let uncapped = Double(retryBackoffBaseMilliseconds) * Double(sign: .plus, exponent: doublings, significand: 1)
        let backoff = min(uncapped, Double(retryBackoffCapMilliseconds))
        return Int64(backoff / 2 + backoff / 2 * min(max(jitter, 0), 1))
    }

    /// Checks every field against its limits.
    /// - Throws: ``QueueSettingsError`` naming the first field out of range (API names, camelCase).
    public func validate(for queue: QueueName) throws(QueueSettingsError) {
        func check(_ condition: Bool, _ field: String, _ rule: String) throws(QueueSettingsError) {
            if !condition { throw QueueSettingsError(field: field, rule: rule) }
        }
        // The queue's default for receives that name none: the same floor as theirs.
        try check(
            (Self.minimumReceiveVisibilityMilliseconds...Self.maximumVisibilityTimeoutMilliseconds).contains(visibilityTimeoutMilliseconds),
            "visibilityTimeoutMs",
            "must be from \(Self.minimumReceiveVisibilityMilliseconds) to \(Self.maximumVisibilityTimeoutMilliseconds) (12 hours)"
        )
        if let maxReceiveCount {
            try check(
                (1...Self.maximumReceiveCountLimit).contains(maxReceiveCount), "maxReceiveCount",
                "must be from 1 to \(Self.maximumReceiveCountLimit), or null for no limit")
        }
        try check(deadLetterQueue != queue, "deadLetterQueue", "must be another queue than \(queue)")
        try check(
            (0...Self.maximumVisibilityTimeoutMilliseconds).contains(retryBackoffBaseMilliseconds),
            "retryBackoff.baseMs", "must be from 0 to \(Self.maximumVisibilityTimeoutMilliseconds) (12 hours)"
        )
        try check(
            (retryBackoffBaseMilliseconds...Self.maximumVisibilityTimeoutMilliseconds).contains(retryBackoffCapMilliseconds),
            "retryBackoff.capMs", "must be from retryBackoff.baseMs to \(Self.maximumVisibilityTimeoutMilliseconds) (12 hours)"
        )
        try check(
            (Self.minimumRetentionMilliseconds...Self.maximumRetentionMilliseconds).contains(retentionMilliseconds),
            "retentionMs", "must be from \(Self.minimumRetentionMilliseconds) (1 minute) to \(Self.maximumRetentionMilliseconds) (14 days)"
        )
        try check((0...retentionMilliseconds).contains(delayMilliseconds), "delayMs", "must be from 0 to retentionMs")
        if let maxDepth {
            try check((1...Self.maximumDepthLimit).contains(maxDepth), "maxDepth", "must be from 1 to \(Self.maximumDepthLimit), or null for no limit")
        }
        try check(
            (1...Self.maximumDedupWindowMilliseconds).contains(dedupWindowMilliseconds),
            "dedupWindowMs", "must be from 1 to \(Self.maximumDedupWindowMilliseconds) (7 days)"
        )
        try check((1...QueueName.maximumPartitions).contains(partitions), "partitions", "must be from 1 to \(QueueName.maximumPartitions)")
        for (field, value) in [("maxMessageBytes", maxMessageBytes), ("offloadThresholdBytes", offloadThresholdBytes)] {
            guard let value else { continue }
            try check(
                (1...Self.maximumMessageBytesLimit).contains(value), field,
                "must be from 1 to \(Self.maximumMessageBytesLimit) (32 MiB), or null for the service's default")
        }
    }
}

/// A queue setting out of range.
public struct QueueSettingsError: Error, Hashable, Sendable, CustomStringConvertible {
    /// The field as the API names it (`retryBackoff.capMs`).
    public let field: String
    public let rule: String

    public init(field: String, rule: String) {
        self.field = field
        self.rule = rule
    }

    public var description: String { "\(field) \(rule)" }
}
