public import NIOCore

/// One publish as the store applies it: the messages, and for each the subscriptions it goes to,
/// decided from the subscriptions at ``version``.
public struct TopicFanOut: Sendable {
    /// One published message.
    public struct Message: Sendable {
        public var id: String
        /// Validated JSON, stored as sent.
        public var body: ByteBuffer
        /// Indexes into ``TopicFanOut/targets`` of the subscriptions whose filters matched it.
        public var targets: [Int]

        public init(id: String, body: ByteBuffer, targets: [Int]) {
            self.id = id
            self.body = body
            self.targets = targets
        }
    }

    /// A subscription and the queue its copies go to (a partition of it, for a partitioned queue).
    public struct Target: Sendable, Equatable {
        public var subscription: SubscriptionName
        public var queue: QueueName
        /// Messages of this publish its filter did not match (counted, not stored).
        public var filteredOut: Int

        public init(subscription: SubscriptionName, queue: QueueName, filteredOut: Int) {
            self.subscription = subscription
            self.queue = queue
            self.filteredOut = filteredOut
        }
    }

    public var topic: TopicName
    /// The version of the subscriptions the targets were decided from.
    public var version: String
    public var targets: [Target]
    public var messages: [Message]
    /// Delay and priority for every copy; the idempotency key is the topic's (a repeat inside
    /// the dedup window stores nothing anywhere and answers the first publish).
    public var options: SendOptions
    /// How long a topic remembers an idempotency key.
    public var dedupWindowMilliseconds: Int64

    public init(
        topic: TopicName,
        version: String,
        targets: [Target],
        messages: [Message],
        options: SendOptions,
        dedupWindowMilliseconds: Int64
    ) {
        self.topic = topic
        self.version = version
        self.targets = targets
        self.messages = messages
        self.options = options
        self.dedupWindowMilliseconds = dedupWindowMilliseconds
    }
}

/// The store's answer to a ``TopicFanOut``.
public enum TopicFanOutResult: Sendable, Equatable {
    /// Stored: per message, in order.
    case published([TopicPublished])
    /// The subscriptions changed since the version the fan-out was decided from; nothing was
    /// stored. Read them again and decide again.
    case stale
}

/// One message of a publish, as the client is told.
public struct TopicPublished: Sendable, Equatable {
    public var id: String
    public var topic: TopicName
    public var publishedAtMilliseconds: Int64
    /// How many subscriptions' queues stored it.
    public var deliveredTo: Int
    /// A repeat of an earlier publish with the same idempotency key: nothing was stored now.
    public var isDuplicate: Bool

    public init(id: String, topic: TopicName, publishedAtMilliseconds: Int64, deliveredTo: Int, isDuplicate: Bool = false) {
        self.id = id
        self.topic = topic
        self.publishedAtMilliseconds = publishedAtMilliseconds
        self.deliveredTo = deliveredTo
        self.isDuplicate = isDuplicate
    }
}
