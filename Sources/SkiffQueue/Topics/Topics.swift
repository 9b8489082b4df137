public import NIOCore
import Synchronization

/// Publishing to topics, over a ``TopicStore``: decides which subscriptions each message goes to
/// (their filter policies, docs/topics.md) and has the store apply the fan-out atomically.
///
/// Each replica remembers a topic's subscriptions with their version and decides from them; the
/// store refuses a fan-out decided from an older version, and the publish is decided again from
/// the subscriptions read afresh. So a subscription change applies to the next publish on every
/// replica, at the cost of one round trip per publish (two after a change).
public final class Topics: Sendable {
    /// The queue a subscription's copy goes to: the queue itself, or one partition of a
    /// partitioned queue.
    public typealias PartitionChooser = @Sendable (_ queue: QueueName, _ idempotencyKey: String?) async throws -> QueueName

    public let store: any TopicStore
    private let choosePartition: PartitionChooser
    /// Bodies over the payload threshold go to its store, one object shared by a message's copies
    /// (``SharedPayloadObjects``); `nil`: every body is kept whole in the queues.
    let payloads: OffloadingQueues?
    private let known = Mutex(Remembered())
    /// Concurrent publishes to one topic with the same delay and priority and no idempotency key
    /// share one fan-out (one script run on Redis): its fixed cost, and each subscriber queue's,
    /// is paid once for all of them. Set once, right after init.
    private let merged = Mutex<Coalescer<MergeKey, ByteBuffer, TopicPublished>?>(nil)

    private struct MergeKey: Hashable, Sendable {
        let topic: TopicName
        let delayMilliseconds: Int64?
        let priority: Int
    }

    /// A fan-out decided this many times from subscriptions that kept changing is answered 503.
    static var maximumAttempts: Int { 5 }
    /// Topics whose subscriptions a replica remembers at most, and their filter policies' bytes
    /// in all (the oldest half goes when either is reached).
    static var maximumRemembered: Int { 10_000 }
    static var maximumRememberedPolicyBytes: Int { 32 << 20 }
    /// What one publish may store in all subscriber queues together: its bodies' bytes times the
    /// subscriptions each matched (a 413 past it, nothing stored). One script run writes it all.
    public static let defaultMaximumFanOutBytes = 64 << 20
    public let maximumFanOutBytes: Int

    struct Remembered {
        var topics: [TopicName: Compiled] = [:]
        var policyBytes = 0
    }

    /// Which messages a subscription takes.
    enum Rule {
        /// No filter policy.
        case everything
        case policy(TopicFilter)
        /// A stored policy this version cannot compile (written by another version): it matches
        /// nothing rather than everything.
        case nothing

        func matches(_ body: JSONValue?) -> Bool {
            switch self {
            case .everything: true
            case .policy(let filter): body.map(filter.matches) ?? false
            case .nothing: false
            }
        }
    }

    struct Compiled {
        var subscriptions: TopicSubscriptions
        /// In the order of ``TopicSubscriptions/subscriptions``.
        var rules: [Rule]
        var usedAt: ContinuousClock.Instant
        var policyBytes: Int
    }

    public init(
        store: any TopicStore,
        maximumFanOutBytes: Int = Topics.defaultMaximumFanOutBytes,
        payloads: OffloadingQueues? = nil,
        choosePartition: @escaping PartitionChooser = { queue, _ in queue }
    ) {
        self.store = store
        self.payloads = payloads?.offload == nil ? nil : payloads
        self.maximumFanOutBytes = maximumFanOutBytes
        self.choosePartition = choosePartition
        merged.withLock {
            $0 = Coalescer(maximumItems: 1000) { [weak self] key, members in
                guard let self else { return members.map { _ in .failure(CancellationError()) } }
                let options = SendOptions(delay: key.delayMilliseconds.map { .milliseconds($0) }, priority: key.priority)
                do {
                    let published = try await self.publishNow(members.flatMap { $0 }, to: key.topic, options: options)
                    var start = 0
                    return members.map { member in
                        defer { start += member.count }
                        return .success(Array(published[start..<start + member.count]))
                    }
                } catch let error as QueueError where error.kind == .tooLarge && members.count > 1 {
                    // Too much together: each on its own, so only one too large by itself fails.
                    var results: [Result<[TopicPublished], any Error>] = []
                    for member in members {
                        do {
                            results.append(.success(try await self.publishNow(member, to: key.topic, options: options)))
                        } catch {
                            results.append(.failure(error))
                        }
                    }
                    return results
                } catch {
                    return members.map { _ in .failure(error) }
                }
            }
        }
    }

    /// Publishes `bodies` (validated JSON) to `topic`: each is stored in the queue of every
    /// subscription whose filter matches it, all in one atomic step.
    /// - Throws: ``QueueError`` `.invalidArgument` for bad options, `.tooManyQueues` for a new
    ///   topic past the limit, `.unavailable` when storage fails or the subscriptions kept changing.
    public func publish(_ bodies: [ByteBuffer], to topic: TopicName, options: SendOptions) async throws -> [TopicPublished] {
        try options.validate()
        // A keyed publish runs alone: its key names exactly its own messages. So does one with a
        // body for the payload store: the others would wait for its upload and share its failure.
        if options.idempotencyKey == nil, !(payloads?.offloadsAnyOf(bodies) ?? false), let merged = merged.withLock({ $0 }) {
            let key = MergeKey(topic: topic, delayMilliseconds: options.delay?.milliseconds, priority: options.priority)
            return try await merged.submit(bodies, for: key)
        }
        return try await publishNow(bodies, to: topic, options: options)
    }

    private func publishNow(_ bodies: [ByteBuffer], to topic: TopicName, options: SendOptions) async throws -> [TopicPublished] {
        let now = MessageID.currentMilliseconds()
        var ids = bodies.map { _ in MessageID.make(nowMilliseconds: now) }
        // What the queues store: each body, or the pointer to its object in the payload store.
        var stored = bodies
        var objects: SharedPayloadObjects?
        if let payloads {
            objects = try await SharedPayloadObjects.store(bodies, ids: &ids, stored: &stored, over: payloads, nowMilliseconds: now)
        }
        do {
            let published = try await fanOut(bodies, stored: stored, ids: ids, to: topic, options: options, objects: &objects)
            if var held = objects {
                // A repeated idempotency key stored nothing (its answer is the first publish's, which
                // may hold fewer messages): its objects go, the first publish's stay.
                let repeated = published.first?.isDuplicate ?? false
                await held.settle(
                    stored: Dictionary(
                        uniqueKeysWithValues: held.ids.keys.map { index in
                            (index, repeated || !published.indices.contains(index) ? 0 : published[index].deliveredTo)
                        }))
            }
            return published
        } catch let error as UnknownFanOutOutcome {
            // Copies may exist: the objects stay, counted as the copies that may.
            throw error.underlying
        } catch {
            if var held = objects { await held.settle(stored: [:]) }
            throw error
        }
    }

    /// A fan-out whose outcome is unknown (Redis timed out, the connection broke): copies may exist.
    private struct UnknownFanOutOutcome: Error {
        let underlying: any Error
    }

    /// Decides which subscriptions take each message and has the store apply it, from the
    /// subscriptions read afresh when they changed meanwhile. `bodies` are what filters read,
    /// `stored` what the queues keep; `objects`' counts are raised to each attempt's matches.
    private func fanOut(
        _ bodies: [ByteBuffer], stored: [ByteBuffer], ids: [String], to topic: TopicName, options: SendOptions,
        objects: inout SharedPayloadObjects?
    ) async throws -> [TopicPublished] {
        // Parsed once per publish, and only when some subscription has a filter.
        var parsed: [JSONValue?]?
        var fresh = false
        for _ in 0..<Self.maximumAttempts {
            let compiled = try await subscriptions(of: topic, fresh: fresh)
            if parsed == nil, compiled.rules.contains(where: { if case .everything = $0 { false } else { true } }) {
                parsed = try bodies.enumerated().map { index, body in
                    do {
                        return try JSONValue(parsing: body.readableBytesView)
                    } catch {
                        // Valid JSON the matcher cannot represent (a number past ±1.8e308, an
                        // unpaired surrogate escape): refused, rather than silently matching nothing.
                        throw QueueError.invalidArgument(
                            "message \(index) cannot be matched against the topic's filter policies: it holds a number beyond ±1.8e308 or an unpaired surrogate escape"
                        )
                    }
                }
            }
            var targets: [TopicFanOut.Target] = []
            var messages = zip(ids, stored).map { TopicFanOut.Message(id: $0, body: $1, targets: []) }
            for (index, subscription) in compiled.subscriptions.subscriptions.enumerated() {
                var filteredOut = 0
                for message in messages.indices {
                    guard compiled.rules[index].matches(parsed?[message] ?? nil) else {
                        filteredOut += 1
                        continue
                    }
                    messages[message].targets.append(targets.count)
                }
                // A subscriber queue whose partition count cannot be read now takes its copy in
                // partition 0 (the queue itself), which is always served, rather than fail the publish.
                let queue = (try? await choosePartition(subscription.queue, options.idempotencyKey)) ?? subscription.queue
                targets.append(TopicFanOut.Target(subscription: subscription.name, queue: queue, filteredOut: filteredOut))
            }
            let copyBytes = messages.reduce(0) { $0 + $1.body.readableBytes * $1.targets.count }
            guard copyBytes <= maximumFanOutBytes else {
                throw QueueError.tooLarge(
                    "this publish would store \(copyBytes) bytes in its subscribers' queues (its bodies times the subscriptions each matches), more than the \(maximumFanOutBytes) one publish may; publish fewer or smaller messages; nothing was stored"
                )
            }
            let fanOut = TopicFanOut(
                topic: topic,
                version: compiled.subscriptions.version,
                targets: targets,
                messages: messages,
                options: options,
                dedupWindowMilliseconds: QueueSettings().dedupWindowMilliseconds
            )
            if objects != nil {
                try await objects!.hold(Dictionary(uniqueKeysWithValues: objects!.ids.keys.map { ($0, messages[$0].targets.count) }))
            }
            let result: TopicFanOutResult
            do {
                result = try await store.fanOut(fanOut)
            } catch let error as QueueError where OffloadingQueues.refusedWithoutStoring(error) {
                throw error
            } catch {
                throw UnknownFanOutOutcome(underlying: error)
            }
            switch result {
            case .published(let published): return published
            case .stale: fresh = true
            }
        }
        throw QueueError.unavailable("the subscriptions of topic \(topic) changed during each of \(Self.maximumAttempts) attempts to publish")
    }

    /// Validates and stores a subscription (``TopicStore/putSubscription(_:on:)``).
    /// - Throws: ``QueueError`` `.invalidArgument` for a filter policy that is not valid, naming
    ///   the offending path; the store's errors.
    @discardableResult
    public func subscribe(_ subscription: TopicSubscription, to topic: TopicName) async throws -> Bool {
        if let policy = subscription.filterPolicy { _ = try Self.filter(policy) }
        let created = try await store.putSubscription(subscription, on: topic)
        forget(topic)
        return created
    }

    public func unsubscribe(_ name: SubscriptionName, from topic: TopicName) async throws -> Bool {
        let deleted = try await store.deleteSubscription(name, of: topic)
        forget(topic)
        return deleted
    }

    public func delete(_ topic: TopicName) async throws -> Bool {
        let deleted = try await store.deleteTopic(topic)
        forget(topic)
        return deleted
    }

    /// A filter policy given as JSON text, compiled.
    /// - Throws: ``QueueError`` `.invalidArgument` saying what is wrong and where.
    public static func filter(_ policy: String) throws(QueueError) -> TopicFilter {
        let value: JSONValue
        do {
            value = try JSONValue(parsing: Array(policy.utf8))
        } catch {
            throw .invalidArgument("filter must be a JSON object")
        }
        do {
            return try TopicFilter(policy: value)
        } catch {
            throw .invalidArgument(error.description)
        }
    }

    // MARK: Remembered subscriptions

    private func subscriptions(of topic: TopicName, fresh: Bool) async throws -> Compiled {
        let now = ContinuousClock.now
        if !fresh,
            let compiled = known.withLock({ known -> Compiled? in
                known.topics[topic]?.usedAt = now
                return known.topics[topic]
            })
        {
            return compiled
        }
        let read = try await store.subscriptions(of: topic)
        let rules = read.subscriptions.map { subscription -> Rule in
            guard let policy = subscription.filterPolicy else { return .everything }
            return (try? Self.filter(policy)).map(Rule.policy) ?? .nothing
        }
        let bytes = read.subscriptions.reduce(0) { $0 + ($1.filterPolicy?.utf8.count ?? 0) }
        let compiled = Compiled(subscriptions: read, rules: rules, usedAt: now, policyBytes: bytes)
        known.withLock { known in
            // Never replace a newer version read by a concurrent publish.
            if let current = known.topics[topic],
                TopicSubscriptions.order(of: current.subscriptions.version) > TopicSubscriptions.order(of: read.version)
            {
                return
            }
            if let previous = known.topics.removeValue(forKey: topic) { known.policyBytes -= previous.policyBytes }
            if known.topics.count >= Self.maximumRemembered || known.policyBytes + bytes > Self.maximumRememberedPolicyBytes {
                let oldest = known.topics.sorted { $0.value.usedAt < $1.value.usedAt }.prefix(max(1, known.topics.count / 2))
                for (name, entry) in oldest {
                    known.topics[name] = nil
                    known.policyBytes -= entry.policyBytes
                }
            }
            known.topics[topic] = compiled
            known.policyBytes += bytes
        }
        return compiled
    }

    private func forget(_ topic: TopicName) {
        known.withLock { known in
            if let previous = known.topics.removeValue(forKey: topic) { known.policyBytes -= previous.policyBytes }
        }
    }
}

extension Topics {
    /// Topics over a queue backend that keeps them (through its partitions when it is
    /// ``PartitionedQueues``); `nil` when it keeps none.
    public static func over(_ backend: some QueueBackend) -> Topics? {
        // Over the inner backend's topics, with bodies over the threshold in the payload store.
        over(backend, payloads: nil)
    }

    private static func over(_ backend: some QueueBackend, payloads: OffloadingQueues?) -> Topics? {
        if let offloading = backend as? OffloadingQueues { return over(offloading.inner, payloads: offloading) }
        if let partitioned = backend as? PartitionedQueues {
            guard let store = partitioned.inner as? any TopicStore else { return nil }
            return Topics(store: store, payloads: payloads) { queue, key in try await partitioned.partition(forCopyTo: queue, idempotencyKey: key) }
        }
        return (backend as? any TopicStore).map { Topics(store: $0, payloads: payloads) }
    }
}
