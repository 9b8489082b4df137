/// A subscription of a topic: every message published to the topic that its filter policy
/// matches (every message when it has none) is stored in its queue, in the same atomic step as
/// the publish (docs/topics.md). A push subscription's queue holds the copies waiting to be
/// POSTed to its ``push`` endpoint.
public struct TopicSubscription: Sendable, Equatable {
    public var name: SubscriptionName
    /// The queue that receives the matched messages (a partitioned queue: one partition each).
    public var queue: QueueName
    /// The filter policy as the client wrote it (validated JSON text), `nil` for none.
    public var filterPolicy: String?
    /// When the subscription was created or last replaced, in Unix milliseconds.
    public var updatedAtMilliseconds: Int64
    /// Where the queue's copies are pushed; `nil` for a queue subscription, whose consumers read the queue.
    public var push: PushEndpoint?

    public init(name: SubscriptionName, queue: QueueName, filterPolicy: String?, updatedAtMilliseconds: Int64, push: PushEndpoint? = nil) {
        self.name = name
        self.queue = queue
        self.filterPolicy = filterPolicy
        self.updatedAtMilliseconds = updatedAtMilliseconds
        self.push = push
    }

    /// The queue a push subscription gets when it names none: `{topic}-{name}-push`, when that fits.
    public static func defaultPushQueue(topic: TopicName, name: SubscriptionName) -> QueueName? {
        QueueName("\(topic.rawValue)-\(name.rawValue)-push")
    }
}

/// Every push subscription of a service, read together, with a version that changes whenever one
/// is stored or deleted (a replica reads them again only then).
public struct PushSubscriptions: Sendable, Equatable {
    public struct Entry: Sendable, Equatable {
        public var topic: TopicName
        public var subscription: TopicSubscription

        public init(topic: TopicName, subscription: TopicSubscription) {
            self.topic = topic
            self.subscription = subscription
        }
    }

    public var version: String
    /// Only subscriptions with a ``TopicSubscription/push`` endpoint.
    public var entries: [Entry]

    public init(version: String, entries: [Entry]) {
        self.version = version
        self.entries = entries
    }
}

/// Push outcomes one replica counted for one subscription since it last reported them.
public struct PushCount: Sendable, Equatable {
    public var topic: TopicName
    public var subscription: SubscriptionName
    /// Messages the endpoint took (a 2xx answer).
    public var pushed: Int64
    /// Messages given up after their last attempt (dead-lettered).
    public var failed: Int64

    public init(topic: TopicName, subscription: SubscriptionName, pushed: Int64, failed: Int64) {
        self.topic = topic
        self.subscription = subscription
        self.pushed = pushed
        self.failed = failed
    }
}

/// A topic's subscriptions as stored at one version: every change (a subscription put or
/// deleted) raises the version, and a fan-out computed from an older version is refused by the
/// store (``TopicFanOutResult/stale``), so a change applies to the next publish on every replica.
public struct TopicSubscriptions: Sendable, Equatable {
    /// `"0"` for a topic without subscriptions. Otherwise `<n>-<nonce>`: `n` from one counter for
    /// all topics (it orders versions), and a random nonce, so that a version is never issued
    /// twice even when a Redis failover loses the counter's last increments.
    public var version: String
    public var subscriptions: [TopicSubscription]

    /// The version of a topic without subscriptions.
    public static let none = "0"

    /// The counter part of a version, which orders two versions of one topic.
    public static func order(of version: String) -> Int64 {
        Int64(version.prefix { $0 != "-" }) ?? 0
    }

    /// A nonce for a new version.
    public static func nonce() -> String {
        String(UInt64.random(in: 0...UInt64.max), radix: 36)
    }

    /// Subscriptions one topic can have at most.
    public static let maximumPerTopic = 256

    public init(version: String, subscriptions: [TopicSubscription]) {
        self.version = version
        self.subscriptions = subscriptions
    }
}

/// What happened to a topic's messages at one subscription since the subscription was created.
public struct SubscriptionCounters: Sendable, Equatable {
    /// Messages its filter matched (every message published when it has no filter).
    public var matched: Int64 = 0
    /// Messages its filter did not match.
    public var filteredOut: Int64 = 0
    /// Matched messages stored in its queue.
    public var delivered: Int64 = 0
    /// Matched messages its queue could not take (at its `maxDepth`, a delay beyond its
    /// retention, or the queue limit reached): the publish succeeded for the other subscriptions.
    public var dropped: Int64 = 0
    /// Push subscriptions: messages the endpoint took (2xx), as the replicas reported them.
    public var pushed: Int64 = 0
    /// Push subscriptions: messages dead-lettered after their last failed attempt.
    public var pushFailed: Int64 = 0

    public init(matched: Int64 = 0, filteredOut: Int64 = 0, delivered: Int64 = 0, dropped: Int64 = 0, pushed: Int64 = 0, pushFailed: Int64 = 0) {
        self.matched = matched
        self.filteredOut = filteredOut
        self.delivered = delivered
        self.dropped = dropped
        self.pushed = pushed
        self.pushFailed = pushFailed
    }
}

/// A topic's figures: messages published, and each subscription's counters.
public struct TopicStats: Sendable, Equatable {
    public var published: Int64
    public var subscriptions: [SubscriptionName: SubscriptionCounters]

    public init(published: Int64 = 0, subscriptions: [SubscriptionName: SubscriptionCounters] = [:]) {
        self.published = published
        self.subscriptions = subscriptions
    }
}
