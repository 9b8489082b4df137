/// What a backend keeps for topics: each topic's subscriptions under a version, their counters,
/// and the fan-out of a publish, applied in one atomic step.
///
/// Implementations behave identically (the topic contract suite runs against each):
/// - ``fanOut(_:)`` stores every copy of every message or none, and refuses (``TopicFanOutResult/stale``)
///   a fan-out decided from subscriptions that have changed since.
/// - A subscriber queue that cannot take a copy (its `maxDepth`, a delay beyond its retention,
///   the queue limit) drops that copy and counts it; the other subscriptions still get theirs.
/// - A topic exists from its first publish or subscription; ``topics()`` lists those.
public protocol TopicStore: Sendable {
    /// The topic's subscriptions, by name, with their version (0 and none for an unknown topic).
    func subscriptions(of topic: TopicName) async throws -> TopicSubscriptions

    /// Creates or replaces a subscription, raising the topic's version (and the push version
    /// when a push endpoint is added, changed or removed); creates the topic.
    /// - Returns: `true` when it was created, `false` when one of that name was replaced.
    /// - Throws: ``QueueError`` `.conflict` when another subscription of the topic already
    ///   delivers to that queue, the topic has its maximum of subscriptions, or the service its
    ///   maximum of push subscriptions (``PushEndpoint/maximumSubscriptions``); `.tooManyQueues`
    ///   when the topic is new and the service holds its maximum of topics.
    func putSubscription(_ subscription: TopicSubscription, on topic: TopicName) async throws -> Bool

    /// Deletes a subscription (its counters too), raising the topic's version.
    /// - Returns: `false` when there was no such subscription.
    func deleteSubscription(_ name: SubscriptionName, of topic: TopicName) async throws -> Bool

    /// Deletes the topic: its subscriptions, counters and idempotency keys. Queues keep what
    /// they were given.
    /// - Returns: `false` when there was no such topic.
    func deleteTopic(_ topic: TopicName) async throws -> Bool

    /// Applies a publish: see the type's documentation.
    /// - Throws: ``QueueError`` `.tooManyQueues` when the topic is new and the service holds its
    ///   maximum of topics, `.unavailable` when storage fails (nothing was stored then, or all).
    func fanOut(_ fanOut: TopicFanOut) async throws -> TopicFanOutResult

    /// Messages published and each subscription's counters.
    func topicStats(of topic: TopicName) async throws -> TopicStats

    /// The topics that exist, by name.
    func topics() async throws -> [TopicName]

    /// The version of the push subscriptions: it changes whenever one is stored or deleted (its
    /// topic deleted too). Cheap: each replica asks about once a second.
    func pushSubscriptionsVersion() async throws -> String

    /// Every push subscription of every topic, with their version.
    func pushSubscriptions() async throws -> PushSubscriptions

    /// Adds push outcomes to subscriptions' counters; a subscription deleted meanwhile is skipped.
    func countPushes(_ counts: [PushCount]) async throws
}
