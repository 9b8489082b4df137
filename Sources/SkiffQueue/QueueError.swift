/// A failure of a queue operation, independent of any transport. The HTTP layer maps it to a
/// status in one place.
public struct QueueError: Error, Hashable, CustomStringConvertible, Sendable {
    public enum Kind: Hashable, Sendable {
        /// The backend (Redis) cannot be reached or answered too late: retry later.
        case unavailable
        /// The backend refuses writes because it is out of memory.
        case insufficientStorage
        /// The queue holds `maxDepth` messages: retry after consumers caught up. Nothing was stored.
        case queueFull
        /// Creating the queue would pass the service's limit on the number of queues. Nothing was stored.
        case tooManyQueues
        /// The request asks for something the queue's settings do not allow (a delay beyond the
        /// retention period, say). Nothing was stored.
        case invalidArgument
        /// The request contradicts the queue's state (shrinking a partitioned queue, say). Nothing
        /// was changed.
        case conflict
        /// The request would make the backend hold more than a limit allows (a topic publish's
        /// copies, all queues together). Nothing was stored.
        case tooLarge
        /// The backend cannot do this in its configuration (topics on a Redis Cluster, for now).
        case unsupported
        /// A message's body in the payload store is missing or is not what its pointer says (size
        /// or SHA-256): the store lost or changed it. The message stays in its queue.
        case payloadUnreadable
        /// Anything else: a bug or an unexpected reply.
        case internalError
    }

    public let kind: Kind
    /// A message a person can act on.
    public let message: String

    private init(_ kind: Kind, _ message: String) {
        self.kind = kind
        self.message = message
    }

    public static func unavailable(_ detail: String) -> Self { Self(.unavailable, "queue storage is unavailable: \(detail)") }
    public static func insufficientStorage(_ detail: String) -> Self {
        Self(.insufficientStorage, "queue storage is full and refuses new messages: \(detail)")
    }
    public static func queueFull(_ queue: QueueName, maxDepth: Int) -> Self {
        Self(.queueFull, "queue \(queue) is at its maxDepth of \(maxDepth) messages; nothing was stored")
    }
    /// Every partition of a partitioned queue is at its `maxDepth`.
    public static func queueFull(_ queue: QueueName, maxDepth: Int, partitions: Int) -> Self {
        Self(.queueFull, "queue \(queue) is at its maxDepth of \(maxDepth) messages in each of its \(partitions) partitions; nothing was stored")
    }
    public static func tooManyQueues(_ queue: QueueName, maximum: Int) -> Self {
        Self(
            .tooManyQueues,
            "queue \(queue) does not exist and the service already holds its maximum of \(maximum) queues (MAX_QUEUES); delete unused queues or raise the limit; nothing was stored"
        )
    }
    /// Raising a queue's partition count would pass the limit: each partition counts as a queue.
    public static func tooManyQueues(forPartitionsOf queue: QueueName, partitions: Int) -> Self {
        Self(
            .tooManyQueues,
            "queue \(queue) cannot have \(partitions) partitions: each partition counts as a queue and the service would pass its maximum number of queues (MAX_QUEUES); delete unused queues or raise the limit; nothing was changed"
        )
    }
    /// Creating the topic would pass the service's limit on topics (MAX_QUEUES, counted apart from queues).
    public static func tooManyTopics(_ topic: TopicName, maximum: Int) -> Self {
        Self(
            .tooManyQueues,
            "topic \(topic) does not exist and the service already holds its maximum of \(maximum) topics (MAX_QUEUES); delete unused topics or raise the limit; nothing was stored"
        )
    }
    public static func unsupported(_ detail: String) -> Self { Self(.unsupported, detail) }
    public static func payloadUnreadable(_ detail: String) -> Self {
        Self(.payloadUnreadable, "\(detail); the message is not handed out (it is nacked, and in the end dead-lettered)")
    }
    public static func tooLarge(_ detail: String) -> Self { Self(.tooLarge, detail) }
    public static func invalidArgument(_ detail: String) -> Self { Self(.invalidArgument, detail) }
    public static func conflict(_ detail: String) -> Self { Self(.conflict, detail) }
    /// A subscription would deliver to the queue of a push subscription (`owner`: `<topic>/<name>`).
    public static func pushQueueTaken(_ queue: QueueName, owner: String) -> Self {
        Self(
            .conflict,
            "queue \(queue) is push subscription \(owner)'s queue, whose messages are pushed to its endpoint; subscribe another queue; nothing was changed"
        )
    }
    /// A push subscription would take a queue that other topics' subscriptions deliver to.
    public static func pushQueueShared(_ queue: QueueName, subscriptions: Int) -> Self {
        Self(
            .conflict,
            "queue \(queue) already receives from \(subscriptions) other subscription(s); a push subscription's queue must be its own, or their messages would be pushed to this endpoint; name another queue; nothing was changed"
        )
    }
    /// A settings change would lower a queue's partition count.
    public static func partitionsShrink(_ queue: QueueName, current: Int) -> Self {
        Self(
            .conflict,
            "queue \(queue) has \(current) partitions and partitions can only grow (a message must never be left in a partition nobody reads); nothing was changed"
        )
    }
    public static func internalError(_ detail: String) -> Self { Self(.internalError, "internal error: \(detail)") }

    public var description: String { message }
}
