import NIOCore
import Synchronization

/// Topics in memory: each publish is applied under the backend's one lock, so its copies are
/// stored in every matched queue or in none, and the subscriptions cannot change in between.
extension MemoryQueueBackend: TopicStore {
    struct TopicState {
        var version = TopicSubscriptions.none
        var subscriptions: [SubscriptionName: TopicSubscription] = [:]
        var counters: [SubscriptionName: SubscriptionCounters] = [:]
        var published: Int64 = 0
        var idempotencyKeys: [String: (sentAtMilliseconds: Int64, published: [TopicPublished])] = [:]
        var idempotencyKeyOrder: [(sentAtMilliseconds: Int64, key: String)] = []
    }

    public func subscriptions(of topic: TopicName) async throws -> TopicSubscriptions {
        state.withLock { state in
            guard let topicState = state.topics[topic] else { return TopicSubscriptions(version: TopicSubscriptions.none, subscriptions: []) }
            return TopicSubscriptions(version: topicState.version, subscriptions: topicState.subscriptions.values.sorted { $0.name < $1.name })
        }
    }

    public func putSubscription(_ subscription: TopicSubscription, on topic: TopicName) async throws -> Bool {
        try state.withLock { state throws(QueueError) -> Bool in
            try checkTopicLimit(topic, in: state)
            let existing = state.topics[topic]?.subscriptions ?? [:]
            if let other = existing.values.first(where: { $0.queue == subscription.queue && $0.name != subscription.name }) {
                throw QueueError.conflict(
                    "subscription \(other.name) of topic \(topic) already delivers to queue \(subscription.queue); a queue is subscribed to a topic once"
                )
            }
            let created = existing[subscription.name] == nil
            if created, existing.count >= TopicSubscriptions.maximumPerTopic {
                throw QueueError.conflict("topic \(topic) already has its maximum of \(TopicSubscriptions.maximumPerTopic) subscriptions")
            }
            let replaced = existing[subscription.name]
            // A push subscription's queue is its own, over all topics (topic-subscribe.lua).
            let me = "\(topic.rawValue)/\(subscription.name.rawValue)"
            var others = 0
            for (otherTopic, otherState) in state.topics {
                for other in otherState.subscriptions.values where other.queue == subscription.queue {
                    let them = "\(otherTopic.rawValue)/\(other.name.rawValue)"
                    guard them != me else { continue }
                    if other.push != nil { throw QueueError.pushQueueTaken(subscription.queue, owner: them) }
                    others += 1
                }
            }
            if subscription.push != nil, others > 0 { throw QueueError.pushQueueShared(subscription.queue, subscriptions: others) }
            if subscription.push != nil, replaced?.push == nil,
                state.topics.values.reduce(0, { $0 + $1.subscriptions.values.filter { $0.push != nil }.count }) >= PushEndpoint.maximumSubscriptions
            {
                throw QueueError.conflict("the service already holds its maximum of \(PushEndpoint.maximumSubscriptions) push subscriptions")
            }
            if subscription.push != nil || replaced?.push != nil { state.pushVersionClock += 1 }
            state.topicVersionClock += 1
            state.topics[topic, default: TopicState()].version = "\(state.topicVersionClock)-\(TopicSubscriptions.nonce())"
            state.topics[topic]!.subscriptions[subscription.name] = subscription
            if created { state.topics[topic]!.counters[subscription.name] = SubscriptionCounters() }
            return created
        }
    }

    public func deleteSubscription(_ name: SubscriptionName, of topic: TopicName) async throws -> Bool {
        state.withLock { state in
            guard let removed = state.topics[topic]?.subscriptions.removeValue(forKey: name) else { return false }
            if removed.push != nil { state.pushVersionClock += 1 }
            state.topics[topic]!.counters[name] = nil
            state.topicVersionClock += 1
            state.topics[topic]!.version = "\(state.topicVersionClock)-\(TopicSubscriptions.nonce())"
            return true
        }
    }

    public func deleteTopic(_ topic: TopicName) async throws -> Bool {
        state.withLock { state in
            // Versions come from one clock for all topics, so a topic created again never
            // repeats a version a replica may have cached from before the delete.
            guard let removed = state.topics.removeValue(forKey: topic) else { return false }
            if removed.subscriptions.values.contains(where: { $0.push != nil }) { state.pushVersionClock += 1 }
            return true
        }
    }

    public func pushSubscriptionsVersion() async throws -> String {
        state.withLock { String($0.pushVersionClock) }
    }

    public func pushSubscriptions() async throws -> PushSubscriptions {
        state.withLock { state in
            var entries: [PushSubscriptions.Entry] = []
            for (topic, topicState) in state.topics.sorted(by: { $0.key < $1.key }) {
                for subscription in topicState.subscriptions.values.sorted(by: { $0.name < $1.name }) where subscription.push != nil {
                    entries.append(PushSubscriptions.Entry(topic: topic, subscription: subscription))
                }
            }
            return PushSubscriptions(version: String(state.pushVersionClock), entries: entries)
        }
    }

    public func countPushes(_ counts: [PushCount]) async throws {
        state.withLock { state in
            for count in counts where state.topics[count.topic]?.subscriptions[count.subscription] != nil {
                state.topics[count.topic]!.counters[count.subscription, default: SubscriptionCounters()].add(
                    SubscriptionCounters(pushed: count.pushed, pushFailed: count.failed)
                )
            }
        }
    }

    public func fanOut(_ fanOut: TopicFanOut) async throws -> TopicFanOutResult {
        try fanOut.options.validate()
        let now = wallClock()
        let (result, madeReady) = try state.withLock { state throws(QueueError) -> (TopicFanOutResult, Set<QueueName>) in
            guard (state.topics[fanOut.topic]?.version ?? TopicSubscriptions.none) == fanOut.version else { return (.stale, []) }
            try checkTopicLimit(fanOut.topic, in: state)
            state.topics[fanOut.topic, default: TopicState()].forgetIdempotencyKeys(before: now - fanOut.dedupWindowMilliseconds)
            if let key = fanOut.options.idempotencyKey, let original = state.topics[fanOut.topic]!.idempotencyKeys[key] {
                return (
                    .published(
                        original.published.map {
                            var repeated = $0; repeated.isDuplicate = true; return repeated
                        }), []
                )
            }
            var copies = Array(repeating: [Int](), count: fanOut.targets.count)
            for (index, message) in fanOut.messages.enumerated() {
                for target in message.targets { copies[target].append(index) }
            }
            var deliveredTo = Array(repeating: 0, count: fanOut.messages.count)
            var madeReady = Set<QueueName>()
            var counters: [(SubscriptionName, SubscriptionCounters)] = []
            for (index, target) in fanOut.targets.enumerated() {
                let room = Self.room(in: target.queue, for: fanOut.options, in: state, maximumQueues: maximumQueues)
                let stored = copies[index].prefix(room.count)
                if !stored.isEmpty {
                    state.queues[target.queue, default: QueueState()].modify { queueState in
                        for message in stored {
                            let copy = fanOut.messages[message]
                            queueState.enqueue(id: copy.id, body: copy.body, priority: fanOut.options.priority, delayMilliseconds: room.delay, at: now)
                            deliveredTo[message] += 1
                        }
                        queueState.counters.record(\.enqueued, Int64(stored.count), at: now)
                    }
                    if room.delay == 0 { madeReady.insert(target.queue) }
                }
                let matched = Int64(copies[index].count)
                counters.append(
                    (
                        target.subscription,
                        SubscriptionCounters(
                            matched: matched,
                            filteredOut: Int64(target.filteredOut),
                            delivered: Int64(stored.count),
                            dropped: matched - Int64(stored.count)
                        )
                    )
                )
            }
            let published = fanOut.messages.enumerated().map { index, message in
                TopicPublished(id: message.id, topic: fanOut.topic, publishedAtMilliseconds: now, deliveredTo: deliveredTo[index])
            }
            state.topics[fanOut.topic, default: TopicState()].update { topicState in
                topicState.published += Int64(fanOut.messages.count)
                for (name, added) in counters where topicState.subscriptions[name] != nil {
                    topicState.counters[name, default: SubscriptionCounters()].add(added)
                }
                if let key = fanOut.options.idempotencyKey {
                    topicState.idempotencyKeys[key] = (now, published)
                    topicState.idempotencyKeyOrder.append((now, key))
                }
            }
            return (.published(published), madeReady)
        }
        for queue in madeReady { dispatch(queue) }
        return result
    }

    public func topicStats(of topic: TopicName) async throws -> TopicStats {
        state.withLock { state in
            guard let topicState = state.topics[topic] else { return TopicStats() }
            return TopicStats(published: topicState.published, subscriptions: topicState.counters)
        }
    }

    public func topics() async throws -> [TopicName] {
        state.withLock { state in state.topics.keys.sorted() }
    }

    /// How many copies a queue takes now (its `maxDepth` less its depth; none when a delay passes
    /// its retention or the queue would pass the queue limit), and their delay.
    private static func room(
        in queue: QueueName,
        for options: SendOptions,
        in state: borrowing State,
        maximumQueues: Int
    ) -> (count: Int, delay: Int64) {
        let settings = state.queues[queue]?.effectiveSettings ?? QueueSettings()
        let delay = max(0, options.delay?.milliseconds ?? settings.delayMilliseconds)
        guard delay <= settings.retentionMilliseconds, state.queues[queue] != nil || state.queues.count < maximumQueues else {
            return (0, delay)
        }
        guard let maxDepth = settings.maxDepth else { return (.max, delay) }
        return (max(0, maxDepth - (state.queues[queue]?.depth ?? 0)), delay)
    }

    private func checkTopicLimit(_ topic: TopicName, in state: borrowing State) throws(QueueError) {
        if state.topics[topic] == nil, state.topics.count >= maximumQueues {
            throw QueueError.tooManyTopics(topic, maximum: maximumQueues)
        }
    }
}

extension MemoryQueueBackend.TopicState {
    /// Changes the topic in place (one dictionary access for several fields).
    mutating func update(_ body: (inout Self) -> Void) { body(&self) }

    mutating func forgetIdempotencyKeys(before cutoff: Int64) {
        var forgotten = 0
        for (sentAt, key) in idempotencyKeyOrder {
            guard sentAt <= cutoff else { break }
            if idempotencyKeys[key]?.sentAtMilliseconds == sentAt { idempotencyKeys[key] = nil }
            forgotten += 1
        }
        if forgotten > 0 { idempotencyKeyOrder.removeFirst(forgotten) }
    }
}

extension SubscriptionCounters {
    mutating func add(_ other: SubscriptionCounters) {
        matched += other.matched
        filteredOut += other.filteredOut
        delivered += other.delivered
        dropped += other.dropped
        pushed += other.pushed
        pushFailed += other.pushFailed
    }
}
