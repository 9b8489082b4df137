import NIOCore
public import SkiffQueue
import SkiffRedis

/// Topics. On a single Redis a publish's fan-out to every subscriber queue is one script run
/// (publish.lua), so it is stored everywhere or nowhere, and it is refused when the
/// subscriptions changed since the replica read them. On a Redis Cluster the subscriber queues
/// live in other slots than the topic, which no script can span: a publish is appended to the
/// topic's log atomically (with the same checks), and forwarders copy it into each subscriber
/// queue once (RedisQueueBackend+TopicLog.swift; docs/topics.md gives both guarantees).
extension RedisQueueBackend: TopicStore {
    public func subscriptions(of topic: TopicName) async throws -> TopicSubscriptions {
        let reply = try await runTopicScript(RedisQueueScripts.topicSubscriptions, [.string(topic.rawValue)])
        guard let items = reply.array, items.count >= 2, let version = items[0].string, let count = items[1].integer.map(Int.init),
            items.count >= 2 + 2 * count, (items.count - 2) % 2 == 0
        else {
            throw QueueError.internalError("topic-subscriptions script returned \(reply)")
        }
        var subscriptions: [SubscriptionName: TopicSubscription] = [:]
        for index in stride(from: 2, to: 2 + 2 * count, by: 2) {
            guard let name = items[index].string.flatMap(SubscriptionName.init), let stored = items[index + 1].string,
                let subscription = Self.subscription(name, stored: stored)
            else {
                throw QueueError.internalError("topic \(topic) has a malformed subscription: \(items[index])")
            }
            subscriptions[name] = subscription
        }
        for index in stride(from: 2 + 2 * count, to: items.count, by: 2) {
            guard let name = items[index].string.flatMap(SubscriptionName.init), subscriptions[name] != nil else { continue }
            // An endpoint this version cannot read is not pushed to (its copies wait in the queue).
            subscriptions[name]!.push = items[index + 1].string.flatMap { PushEndpoint(stored: $0) }
            if subscriptions[name]!.push == nil {
                logger.error(
                    "a push endpoint cannot be read; its messages wait in the queue", metadata: ["topic.name": "\(topic)", "subscription.name": "\(name)"])
            }
        }
        return TopicSubscriptions(version: version, subscriptions: subscriptions.values.sorted { $0.name < $1.name })
    }

    public func putSubscription(_ subscription: TopicSubscription, on topic: TopicName) async throws -> Bool {
        let stored = "\(subscription.updatedAtMilliseconds)|\(subscription.queue.rawValue)|\(subscription.filterPolicy ?? "")"
        let reply = try await change(
            RedisQueueScripts.subscribe,
            [
                .string(topic.rawValue), .string(subscription.name.rawValue), .string(stored), .string(subscription.queue.rawValue),
                .integer(Int64(configuration.maximumQueues)), .integer(Int64(TopicSubscriptions.maximumPerTopic)),
                .string(TopicSubscriptions.nonce()), .string(subscription.push?.storedText ?? ""),
                .integer(Int64(PushEndpoint.maximumSubscriptions)),
            ]
        )
        guard let items = reply.array, items.count == 2, let status = items[0].integer else {
            throw QueueError.internalError("topic-subscribe script returned \(reply)")
        }
        switch status {
        case 1: return items[1].integer == 1
        case -3: throw QueueError.tooManyTopics(topic, maximum: configuration.maximumQueues)
        case -4:
            throw QueueError.conflict(
                "subscription \(items[1].string ?? "?") of topic \(topic) already delivers to queue \(subscription.queue); a queue is subscribed to a topic once"
            )
        case -5: throw QueueError.conflict("topic \(topic) already has its maximum of \(TopicSubscriptions.maximumPerTopic) subscriptions")
        case -6: throw QueueError.conflict("the service already holds its maximum of \(PushEndpoint.maximumSubscriptions) push subscriptions")
        case -7: throw QueueError.pushQueueTaken(subscription.queue, owner: items[1].string ?? "?")
        case -8: throw QueueError.pushQueueShared(subscription.queue, subscriptions: Int(items[1].integer ?? 1))
        default: throw QueueError.internalError("topic-subscribe script returned \(reply)")
        }
    }

    public func deleteSubscription(_ name: SubscriptionName, of topic: TopicName) async throws -> Bool {
        let reply = try await change(
            RedisQueueScripts.unsubscribe,
            [.string(topic.rawValue), .string(name.rawValue), .string(TopicSubscriptions.nonce())]
        )
        return reply.integer == 1
    }

    public func deleteTopic(_ topic: TopicName) async throws -> Bool {
        let reply = try await change(RedisQueueScripts.deleteTopic, [.string(topic.rawValue)])
        return reply.integer == 1
    }

    public func fanOut(_ fanOut: TopicFanOut) async throws -> TopicFanOutResult {
        if clustered { return try await fanOutThroughLog(fanOut) }
        let reply = try await enqueue(publishArguments(fanOut), keys: [], script: RedisQueueScripts.publish)
        guard let items = reply.array, let status = items.first?.integer else { throw QueueError.internalError("publish script returned \(reply)") }
        switch status {
        case 1:
            guard let now = items[1].integer, items.count == 2 + fanOut.messages.count else {
                throw QueueError.internalError("publish script returned \(reply)")
            }
            return .published(
                zip(fanOut.messages, items.dropFirst(2)).map { message, delivered in
                    TopicPublished(id: message.id, topic: fanOut.topic, publishedAtMilliseconds: now, deliveredTo: Int(delivered.integer ?? 0))
                }
            )
        default: return try refusedPublish(status, reply, of: fanOut)
        }
    }

    /// The arguments of publish.lua and topic-append.lua (the same).
    func publishArguments(_ fanOut: TopicFanOut) -> [RedisArgument] {
        let options = fanOut.options
        var arguments: [RedisArgument] = [
            .string(prefix), .string(""), .string(fanOut.topic.rawValue), .string(fanOut.version), .string(options.idempotencyKey ?? ""),
            .integer(Int64(configuration.maximumQueues)), .integer(Int64(options.priority)),
            options.delay.map { .integer(max(0, $0.milliseconds)) } ?? .string(""), .integer(fanOut.dedupWindowMilliseconds),
            .integer(Int64(fanOut.targets.count)),
        ]
        for target in fanOut.targets {
            arguments += [.string(target.queue.rawValue), .string(target.subscription.rawValue), .integer(Int64(target.filteredOut))]
        }
        arguments.append(.integer(Int64(fanOut.messages.count)))
        for message in fanOut.messages {
            arguments += [.string(message.id), .bytes(message.body), .integer(Int64(message.targets.count))]
            arguments += message.targets.map { .integer(Int64($0 + 1)) }
        }
        return arguments
    }

    /// A publish answered without storing anything (publish.lua and topic-append.lua answer alike).
    func refusedPublish(_ status: Int64, _ reply: RedisValue, of fanOut: TopicFanOut) throws -> TopicFanOutResult {
        let items = reply.array ?? []
        switch status {
        case 0:
            // "<now>|<id>:<deliveredTo>,...": the publish that stored this idempotency key.
            guard let original = items.count == 2 ? items[1].string : nil, let bar = original.firstIndex(of: "|"),
                let now = Int64(original[..<bar])
            else {
                throw QueueError.internalError("malformed idempotency record in topic \(fanOut.topic)")
            }
            return .published(
                original[original.index(after: bar)...].split(separator: ",").map { entry in
                    let parts = entry.split(separator: ":")
                    return TopicPublished(
                        id: String(parts[0]),
                        topic: fanOut.topic,
                        publishedAtMilliseconds: now,
                        deliveredTo: parts.count > 1 ? Int(parts[1]) ?? 0 : 0,
                        isDuplicate: true
                    )
                }
            )
        case -9: return .stale
        case -3: throw QueueError.tooManyTopics(fanOut.topic, maximum: configuration.maximumQueues)
        default: throw QueueError.internalError("publish script returned \(reply)")
        }
    }

    public func topicStats(of topic: TopicName) async throws -> TopicStats {
        let key = topicKey(topic, "counters")
        let reply = try await mapErrors { try await client.send(RedisCommand("HGETALL", .string(key)), slotKey: key) }
        guard let items = reply.array, items.count % 2 == 0 else { throw QueueError.internalError("HGETALL \(key) returned \(reply)") }
        var stats = TopicStats()
        for index in stride(from: 0, to: items.count, by: 2) {
            guard let field = items[index].string, let value = items[index + 1].string.flatMap({ Int64($0) }) else { continue }
            if field == "published" {
                stats.published = value
                continue
            }
            guard let bar = field.lastIndex(of: "|"), let name = SubscriptionName(field[..<bar]) else { continue }
            var counters = stats.subscriptions[name] ?? SubscriptionCounters()
            switch field[field.index(after: bar)...] {
            case "matched": counters.matched = value
            case "filteredOut": counters.filteredOut = value
            case "delivered": counters.delivered = value
            case "dropped": counters.dropped = value
            case "pushed": counters.pushed = value
            case "pushFailed": counters.pushFailed = value
            default: continue
            }
            stats.subscriptions[name] = counters
        }
        return stats
    }

    public func topics() async throws -> [TopicName] {
        // A page at a time (`SSCAN`), so a large registry never blocks Redis in one command.
        let key = topicIndexKey("topics")
        var (cursor, names) = ("0", Set<TopicName>())
        repeat {
            let reply = try await mapErrors {
                try await client.send(RedisCommand("SSCAN", .string(key), .string(cursor), .string("COUNT"), .integer(500)), slotKey: key)
            }
            guard let page = reply.array, page.count == 2, let next = page[0].string else {
                throw QueueError.internalError("SSCAN \(key) returned \(reply)")
            }
            for name in page[1].array ?? [] { if let topic = name.string.flatMap(TopicName.init) { names.insert(topic) } }
            cursor = next
        } while cursor != "0"
        return names.sorted()
    }

    public func pushSubscriptionsVersion() async throws -> String {
        let key = topicIndexKey("push-version")
        let reply = try await mapErrors { try await client.send(RedisCommand("GET", .string(key)), slotKey: key) }
        return reply.string ?? "0"
    }

    public func pushSubscriptions() async throws -> PushSubscriptions {
        let key = topicIndexKey("push-subscriptions")
        // The version read first: a change during the read raises it past this one, so the
        // reader looks again at its next check, never keeping what it missed.
        let version = try await pushSubscriptionsVersion()
        let reply = try await mapErrors { try await client.send(RedisCommand("SMEMBERS", .string(key)), slotKey: key) }
        let topics = Set((reply.array ?? []).compactMap { member in member.string?.split(separator: "/").first.flatMap(TopicName.init) })
        var entries: [PushSubscriptions.Entry] = []
        for topic in topics.sorted() {
            for subscription in try await subscriptions(of: topic).subscriptions where subscription.push != nil {
                entries.append(PushSubscriptions.Entry(topic: topic, subscription: subscription))
            }
        }
        return PushSubscriptions(version: version, entries: entries)
    }

    public func countPushes(_ counts: [PushCount]) async throws {
        for (topic, group) in Dictionary(grouping: counts, by: \.topic) {
            var arguments: [RedisArgument] = [.string(topic.rawValue)]
            for count in group { arguments += [.string(count.subscription.rawValue), .integer(count.pushed), .integer(count.failed)] }
            _ = try await runTopicScript(RedisQueueScripts.countPushes, arguments)
        }
    }

    /// A change of a topic's subscriptions, waiting for Redis replicas as a send does
    /// (`REDIS_WAIT_REPLICAS`), so a failover does not forget it.
    private func change(_ script: RedisScript, _ arguments: [RedisArgument]) async throws -> RedisValue {
        try await enqueue([.string(prefix), .string("")] + arguments, keys: topicScriptKeys, script: script)
    }

    /// Runs a topic script (ARGV from the topic on).
    func runTopicScript(_ script: RedisScript, _ arguments: [RedisArgument]) async throws -> RedisValue {
        try await mapErrors { try await client.evaluate(script, keys: topicScriptKeys, arguments: [.string(prefix), .string("")] + arguments) }
    }

    /// Where every topic's keys live on a Redis Cluster: one slot, under a tag no queue name can
    /// be (a name has no `:`), so that a subscription change and the registries it checks (topic
    /// and push limits, which queue is whose) stay one atomic run. topic-library.lua builds the
    /// same names.
    var topicsBase: String { "\(prefix):{:topics}" }

    /// KEYS of a topic script: none on a single Redis; on a cluster the topics' slot.
    var topicScriptKeys: [String] { clustered ? [topicsBase, topicsBase] : [] }

    /// A key of one topic (`counters`, `subs`, ...).
    func topicKey(_ topic: TopicName, _ suffix: String) -> String {
        clustered ? "\(topicsBase):topic:\(topic.rawValue):\(suffix)" : "\(prefix):topic:{\(topic.rawValue)}:\(suffix)"
    }

    /// A registry over all topics (`topics`, `push-version`, `push-subscriptions`, ...).
    func topicIndexKey(_ name: String) -> String { "\(clustered ? topicsBase : prefix):\(name)" }

    /// A stored subscription: "<updatedAt>|<queue>|<filter policy or nothing>".
    static func subscription(_ name: SubscriptionName, stored: String) -> TopicSubscription? {
        let parts = stored.split(separator: "|", maxSplits: 2, omittingEmptySubsequences: false)
        guard parts.count == 3, let updatedAt = Int64(parts[0]), let queue = QueueName(parts[1]) else { return nil }
        return TopicSubscription(name: name, queue: queue, filterPolicy: parts[2].isEmpty ? nil : String(parts[2]), updatedAtMilliseconds: updatedAt)
    }
}
