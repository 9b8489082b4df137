import HTTPTypes
public import Hummingbird
import Logging
import NIOCore
public import SkiffPush
public import SkiffQueue
import SkiffSupport

/// The topic routes (docs/topics.md):
///
/// - `POST /api/topics/{topic}` and `POST /api/topics/{topic}/batch`: publish, as a queue send
///   (same validation, limits, `delay`, `priority`, `Idempotency-Key`): 201 `{"id", "topic",
///   "deliveredTo"}` (a batch: `{"messages": [...], "topic"}`), 200 with `Skiff-Duplicate` for a repeat.
/// - `PUT`, `GET`, `DELETE /api/topics/{topic}/subscriptions/{name}`; `GET
///   /api/topics/{topic}/subscriptions` with counters; `GET /api/topics`; `DELETE /api/topics/{topic}`.
/// - `POST /api/topics/{topic}/filter-test`: whether a filter policy matches a message.
///
/// A subscription names a queue the caller's key must be allowed to use, as the topic; a push
/// subscription its dead-letter queue too. A push subscription's secret is never shown.
public struct TopicController: Sendable {
    public typealias Context = SkiffRequestContext
    let topics: Topics?
    let settings: APISettings
    let metrics: SkiffMetrics
    let push: PushConfiguration
    /// Where a push subscription's queue gets its settings (its lease, attempts, backoff).
    let queues: (any QueueBackend)?
    let resolve: @Sendable (String) async throws -> [IPAddress]

    /// - Parameters:
    ///   - topics: `nil` when the backend keeps no topics: every route answers 501.
    ///   - settingsStore: the queues' settings; `nil`: push subscriptions answer 501.
    ///   - resolve: a push host's addresses, for the address rules.
    public init(
        topics: Topics?,
        settings: APISettings,
        metrics: SkiffMetrics,
        push: PushConfiguration = PushConfiguration(),
        settingsStore: (any QueueBackend)? = nil,
        resolve: @escaping @Sendable (String) async throws -> [IPAddress] = PushAddressRules.resolveHost
    ) {
        self.topics = topics
        self.settings = settings
        self.metrics = metrics
        self.push = push
        self.queues = settingsStore
        self.resolve = resolve
    }

    public func addRoutes(to router: Router<Context>) {
        router.get("/api/topics", use: list)
        router.addMethodNotAllowed(path: "/api/topics", allowed: [.get])
        router.post("/api/topics/:topic", use: publish)
        router.delete("/api/topics/:topic", use: deleteTopic)
        router.addMethodNotAllowed(path: "/api/topics/:topic", allowed: [.post, .delete])
        router.post("/api/topics/:topic/batch", use: publishBatch)
        router.addMethodNotAllowed(path: "/api/topics/:topic/batch", allowed: [.post])
        router.post("/api/topics/:topic/filter-test", use: filterTest)
        router.addMethodNotAllowed(path: "/api/topics/:topic/filter-test", allowed: [.post])
        router.get("/api/topics/:topic/subscriptions", use: subscriptions)
        router.addMethodNotAllowed(path: "/api/topics/:topic/subscriptions", allowed: [.get])
        router.put("/api/topics/:topic/subscriptions/:name", use: subscribe)
        router.get("/api/topics/:topic/subscriptions/:name", use: subscription)
        router.delete("/api/topics/:topic/subscriptions/:name", use: unsubscribe)
        router.addMethodNotAllowed(path: "/api/topics/:topic/subscriptions/:name", allowed: [.put, .get, .delete])
    }

    // MARK: Publishing

    @Sendable func publish(request: Request, context: Context) async throws -> Response {
        let (topics, topic) = try (self.available(), Self.topicName(context))
        let options = try QueueController<PartitionedQueues>.sendOptions(request)
        let body = try await QueueController<PartitionedQueues>.collectBody(request, limit: settings.maximumMessageBytes, settings: settings)
        if let error = JSONValidator.validate(body) {
            throw APIError(.badRequest, "body is not valid JSON: \(error)")
        }
        return QueueController<PartitionedQueues>.response(try await Self.publish(body, to: topic, options: options, topics: topics, metrics: metrics))
    }

    /// Publishes one message (valid JSON) and answers as `POST /api/topics/{topic}` does: the
    /// route's work and the fast path's (FastPathHandler).
    static func publish(_ body: ByteBuffer, to topic: TopicName, options: SendOptions, topics: Topics, metrics: SkiffMetrics) async throws -> ResponseParts {
        let published = try await topics.publish([body], to: topic, options: options)
        guard let message = published.first else { throw APIError(.internalServerError, "a publish of one message returned none") }
        var json = ByteBufferAllocator().buffer(capacity: 128)
        Self.write(message, to: &json)
        return answer(json, published: published, topic: topic, metrics: metrics)
    }

    @Sendable func publishBatch(request: Request, context: Context) async throws -> Response {
        let (topics, topic) = try (self.available(), Self.topicName(context))
        let options = try QueueController<PartitionedQueues>.sendOptions(request)
        let messages = try await QueueController<PartitionedQueues>.batchMessages(
            request, settings: settings, maximumMessageBytes: settings.maximumMessageBytes)
        let published = try await topics.publish(messages, to: topic, options: options)
        var json = ByteBufferAllocator().buffer(capacity: 64 + 80 * published.count)
        json.writeStaticString(#"{"messages":["#)
        for (index, message) in published.enumerated() {
            if index > 0 { json.writeInteger(UInt8(ascii: ",")) }
            Self.write(message, to: &json, withTopic: false)
        }
        json.writeStaticString(#"],"topic":"#)
        JSONText.writeQuoted(topic.rawValue, to: &json)
        json.writeStaticString("}")
        return QueueController<PartitionedQueues>.response(Self.answer(json, published: published, topic: topic, metrics: metrics))
    }

    private static func answer(_ json: ByteBuffer, published: [TopicPublished], topic: TopicName, metrics: SkiffMetrics) -> ResponseParts {
        let duplicate = published.first?.isDuplicate ?? false
        if !duplicate {
            metrics.topicPublished(topic: topic.rawValue, count: published.count, copies: published.reduce(0) { $0 + $1.deliveredTo })
        }
        var parts = ResponseParts.json(duplicate ? .ok : .created, json)
        if duplicate { parts.headers[.skiffDuplicate] = "true" }
        return parts
    }

    private static func write(_ message: TopicPublished, to json: inout ByteBuffer, withTopic: Bool = true) {
        json.writeStaticString(#"{"id":"#)
        JSONText.writeQuoted(message.id, to: &json)
        if withTopic {
            json.writeStaticString(#","topic":"#)
            JSONText.writeQuoted(message.topic.rawValue, to: &json)
        }
        json.writeString(#","deliveredTo":\#(message.deliveredTo),"publishedAt":"#)
        JSONText.writeQuoted(JSONText.timestamp(milliseconds: message.publishedAtMilliseconds), to: &json)
        json.writeStaticString("}")
    }

    // MARK: Subscriptions

    @Sendable func subscribe(request: Request, context: Context) async throws -> Response {
        let (topics, topic) = try (self.available(), Self.topicName(context))
        let name = try Self.subscriptionName(context)
        let body = try await request.body.collect(upTo: Self.maximumSubscriptionBytes)
        guard case .object(let document)? = try? JSONValue(parsing: body.readableBytesView) else {
            throw APIError(.badRequest, "body must be a JSON object: {\"queue\": \"<queue name>\", \"filter\": {...}}")
        }
        if let unknown = document.keys.sorted().first(where: { !["queue", "filter", "push"].contains($0) }) {
            throw APIError(.badRequest, "unknown subscription field '\(unknown)': a subscription has queue, push and filter")
        }
        let endpoint = try pushEndpoint(document["push"])
        let queue: QueueName
        switch document["queue"] {
        case .string(let rawQueue)?:
            guard let named = QueueName(rawQueue) else {
                throw APIError(.badRequest, "queue must be 1 to 128 characters from A-Z, a-z, 0-9, '_' and '-', and not 'topics'")
            }
            queue = named
        case nil where endpoint != nil:
            guard let named = TopicSubscription.defaultPushQueue(topic: topic, name: name) else {
                throw APIError(.badRequest, "'\(topic)-\(name)-push' is too long for a queue name: give the push subscription a queue")
            }
            queue = named
        default:
            throw APIError(.badRequest, "queue must be a queue name: {\"queue\": \"<queue name>\"}, or give a push endpoint")
        }
        // The queue the topic will write to is one more name this key must be allowed to use, and
        // so is the dead-letter queue a push subscription fills.
        try QueueAdminController<PartitionedQueues>.checkAccess(context, to: queue, named: "queue")
        // Replacing a subscription is changing where it delivered too: that queue must be the key's.
        if context.accessGrant?.queuePrefix != nil, let existing = try await Self.existing(name, of: topic, in: topics) {
            try QueueAdminController<PartitionedQueues>.checkAccess(context, to: existing.queue, named: "the subscription's current queue")
        }
        if let endpoint, let queues {
            let current = try await queues.settings(of: queue)
            let pushSettings = endpoint.queueSettings(from: current, leaseMarginMilliseconds: push.leaseMargin.milliseconds)
            let deadLetters = pushSettings.deadLetterQueue(of: queue)
            try QueueAdminController<PartitionedQueues>.checkAccess(context, to: deadLetters, named: "push.deadLetterQueue")
            // Only once every name passed the access check: the answer says whether a host is public.
            try await push.addressRules.check(PushURL(endpoint.url), resolve: resolve)
            do {
                try pushSettings.validate(for: queue)
            } catch {
                throw APIError(.badRequest, "the push queue \(queue) cannot take these settings: \(error)")
            }
            // Before the subscription exists, so no push runs under the queue's earlier lease.
            if pushSettings != current { try await queues.updateSettings(pushSettings, of: queue) }
        }
        var policy: String?
        switch document["filter"] {
        case nil, .null?: policy = nil
        case .object(let object)? where object.isEmpty: policy = nil
        case let filter?: policy = filter.jsonText
        }
        let subscription = TopicSubscription(
            name: name,
            queue: queue,
            filterPolicy: policy,
            updatedAtMilliseconds: MessageID.currentMilliseconds(),
            push: endpoint
        )
        let created = try await topics.subscribe(subscription, to: topic)
        context.logger.info(
            "topic subscription \(created ? "created" : "replaced")",
            metadata: ["topic.name": "\(topic)", "subscription.name": "\(name)", "queue.name": "\(queue)", "push": "\(endpoint != nil)"]
        )
        return QueueController<PartitionedQueues>.json(
            status: created ? .created : .ok,
            Self.json(of: subscription, topic: topic, counters: created ? SubscriptionCounters() : nil)
        )
    }

    @Sendable func subscription(request: Request, context: Context) async throws -> Response {
        let (topics, topic) = try (self.available(), Self.topicName(context))
        let name = try Self.subscriptionName(context)
        guard let subscription = try await Self.existing(name, of: topic, in: topics) else {
            throw APIError(.notFound, "topic \(topic) has no subscription \(name)")
        }
        try QueueAdminController<PartitionedQueues>.checkAccess(context, to: subscription.queue, named: "the subscription's queue")
        let counters = try await topics.store.topicStats(of: topic).subscriptions[name] ?? SubscriptionCounters()
        return QueueController<PartitionedQueues>.json(status: .ok, Self.json(of: subscription, topic: topic, counters: counters))
    }

    @Sendable func unsubscribe(request: Request, context: Context) async throws -> Response {
        let (topics, topic) = try (self.available(), Self.topicName(context))
        let name = try Self.subscriptionName(context)
        if context.accessGrant?.queuePrefix != nil, let existing = try await Self.existing(name, of: topic, in: topics) {
            try QueueAdminController<PartitionedQueues>.checkAccess(context, to: existing.queue, named: "the subscription's queue")
        }
        guard try await topics.unsubscribe(name, from: topic) else {
            throw APIError(.notFound, "topic \(topic) has no subscription \(name)")
        }
        context.logger.info("topic subscription deleted", metadata: ["topic.name": "\(topic)", "subscription.name": "\(name)"])
        return Response(status: .noContent)
    }

    @Sendable func subscriptions(request: Request, context: Context) async throws -> Response {
        let (topics, topic) = try (self.available(), Self.topicName(context))
        async let read = topics.store.subscriptions(of: topic)
        async let stats = topics.store.topicStats(of: topic)
        // A key confined to a prefix sees the subscriptions into its own queues only.
        let (subscriptions, counters) = try await (
            read.subscriptions.filter { context.accessGrant?.permits(queue: $0.queue.rawValue) ?? true }, stats
        )
        let items = subscriptions.map { Self.json(of: $0, topic: topic, counters: counters.subscriptions[$0.name] ?? SubscriptionCounters()) }
        return QueueController<PartitionedQueues>.json(
            status: .ok,
            #"{"topic":\#(JSONText.quoted(topic.rawValue)),"published":\#(counters.published),"subscriptions":[\#(items.joined(separator: ","))]}"#
        )
    }

    // MARK: Topics

    @Sendable func list(request: Request, context: Context) async throws -> Response {
        let topics = try available()
        // A key limited to a prefix sees only the topics it may use.
        let names = try await topics.store.topics().filter { context.accessGrant?.permits(queue: $0.rawValue) ?? true }
        return QueueController<PartitionedQueues>.json(
            status: .ok,
            #"{"topics":[\#(names.map { JSONText.quoted($0.rawValue) }.joined(separator: ","))]}"#
        )
    }

    @Sendable func deleteTopic(request: Request, context: Context) async throws -> Response {
        let (topics, topic) = try (self.available(), Self.topicName(context))
        guard try await topics.delete(topic) else { throw APIError(.notFound, "no topic \(topic)") }
        context.logger.info("topic deleted", metadata: ["topic.name": "\(topic)"])
        return Response(status: .noContent)
    }

    @Sendable func filterTest(request: Request, context: Context) async throws -> Response {
        _ = try Self.topicName(context)
        let body = try await QueueController<PartitionedQueues>.collectBody(
            request,
            limit: Self.maximumSubscriptionBytes + settings.largestInlineMessageBytes,
            settings: settings
        )
        guard case .object(let document)? = try? JSONValue(parsing: body.readableBytesView), let filter = document["filter"],
            let message = document["message"]
        else {
            throw APIError(.badRequest, "body must be a JSON object: {\"filter\": {...}, \"message\": <any JSON>}")
        }
        let compiled: TopicFilter
        do {
            compiled = try TopicFilter(policy: filter)
        } catch {
            throw APIError(.badRequest, error.description)
        }
        return QueueController<PartitionedQueues>.json(status: .ok, #"{"matches":\#(compiled.matches(message))}"#)
    }

    /// The `push` object of a subscription document, validated (where its URL leads is checked
    /// later, after the access checks); `nil` for a queue subscription.
    private func pushEndpoint(_ value: JSONValue?) throws -> PushEndpoint? {
        switch value {
        case nil, .null?: return nil
        case .object(let document)?:
            guard queues != nil else { throw APIError(.notImplemented, "this replica delivers no push subscriptions") }
            return try PushEndpoint(document: document)
        default:
            throw APIError(.badRequest, "push must be an object: {\"url\": \"https://...\", \"secret\": \"...\"}")
        }
    }

    // MARK: Helpers

    /// The largest subscription document accepted (its filter policy, mostly).
    static var maximumSubscriptionBytes: Int { 64 << 10 }

    private func available() throws -> Topics {
        guard let topics else { throw APIError(.notImplemented, "this backend keeps no topics") }
        return topics
    }

    static func existing(_ name: SubscriptionName, of topic: TopicName, in topics: Topics) async throws -> TopicSubscription? {
        try await topics.store.subscriptions(of: topic).subscriptions.first { $0.name == name }
    }

    static func topicName(_ context: Context) throws -> TopicName {
        guard let name = TopicName(context.parameters.get("topic") ?? "") else {
            throw APIError(.badRequest, "topic name must be 1 to 128 characters from A-Z, a-z, 0-9, '_' and '-'")
        }
        return name
    }

    static func subscriptionName(_ context: Context) throws -> SubscriptionName {
        guard let name = SubscriptionName(context.parameters.get("name") ?? "") else {
            throw APIError(.badRequest, "subscription name must be 1 to 128 characters from A-Z, a-z, 0-9, '_' and '-'")
        }
        return name
    }

    /// A subscription as answered. A push subscription's `counters.delivered` counts what its
    /// endpoint took, `queued` what its queue stored, `failed` what was dead-lettered; its secret
    /// is masked.
    static func json(of subscription: TopicSubscription, topic: TopicName, counters: SubscriptionCounters?) -> String {
        var fields = [
            #""name":\#(JSONText.quoted(subscription.name.rawValue))"#,
            #""topic":\#(JSONText.quoted(topic.rawValue))"#,
            #""queue":\#(JSONText.quoted(subscription.queue.rawValue))"#,
            #""filter":\#(subscription.filterPolicy ?? "null")"#,
            #""updatedAt":\#(JSONText.quoted(JSONText.timestamp(milliseconds: subscription.updatedAtMilliseconds)))"#,
        ]
        if let push = subscription.push {
            let deadLetters =
                push.deadLetterQueue.map { JSONText.quoted($0.rawValue) } ?? JSONText.quoted(QueueSettings().deadLetterQueue(of: subscription.queue).rawValue)
            fields.append(
                #""push":{"url":\#(JSONText.quoted(push.url)),"secret":"********","timeoutMs":\#(push.timeoutMilliseconds),"#
                    + #""maxAttempts":\#(push.maxAttempts),"backoff":{"baseMs":\#(push.backoffBaseMilliseconds),"capMs":\#(push.backoffCapMilliseconds)},"#
                    + #""concurrency":\#(push.concurrency),"deadLetterQueue":\#(deadLetters)}"#
            )
        }
        if let counters {
            if subscription.push != nil {
                fields.append(
                    #""counters":{"matched":\#(counters.matched),"filteredOut":\#(counters.filteredOut),"queued":\#(counters.delivered),"#
                        + #""delivered":\#(counters.pushed),"failed":\#(counters.pushFailed),"dropped":\#(counters.dropped)}"#
                )
            } else {
                fields.append(
                    #""counters":{"matched":\#(counters.matched),"filteredOut":\#(counters.filteredOut),"delivered":\#(counters.delivered),"dropped":\#(counters.dropped)}"#
                )
            }
        }
        return "{" + fields.joined(separator: ",") + "}"
    }
}
