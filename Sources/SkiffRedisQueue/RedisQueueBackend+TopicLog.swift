import Logging
import NIOCore
import SkiffQueue
import SkiffRedis

/// Topics on a Redis Cluster. A topic's subscriber queues live in other hash slots than the
/// topic, and no script spans slots, so a publish cannot store its copies in one run. Instead:
///
/// 1. topic-append.lua, in the topics' slot, checks the publish as publish.lua does (current
///    subscriptions, topic limit, idempotency key) and appends it to the topic's log, one entry
///    named by its first message's id: after that it cannot be lost.
/// 2. topic-deliver.lua copies the entry into each subscriber queue, in the queue's slot, once:
///    the queue remembers the entries it took, so running it again stores nothing twice.
/// 3. topic-settle.lua counts what each queue took, once per queue, and removes the entry when
///    every queue has it.
///
/// The replica that publishes runs 2 and 3 before it answers. An entry it left behind (it died,
/// or a subscriber queue's shard did not answer) is finished by any replica's sweep once it is
/// ``forwardingGrace`` old. So a `201` means the publish is in the log, and each copy reaches
/// its queue exactly once: at once normally, within a sweep after a failure.
///
/// A queue's memory of the entries it took is what makes a copy single, so it must outlast any
/// forwarder that may still bring the entry: the settling replica has the queue forget an entry
/// ``forgettingDelay`` after settling it, and no forwarder acts on what it read or appended more
/// than ``staleForwardLimit`` before (a replica paused that long reads again).
extension RedisQueueBackend {
    /// How old an entry must be before a sweep forwards it: the publishing replica is given this
    /// long to do it itself (a sweep that overlaps it stores nothing twice, but does work twice).
    public static var forwardingGrace: Duration { .seconds(5) }
    /// How long a sweep keeps the entries it took before other sweeps may take them: an entry
    /// that keeps failing goes to the back of the log meanwhile.
    static var sweepClaim: Duration { .seconds(10) }
    /// Entries taken per sweep at most, and forwarded at once at most.
    static var entriesPerSweep: Int { 100 }
    static var forwardsAtOnce: Int { 8 }
    /// A forwarder copies nothing from a read (or an append) older than this: a replica paused
    /// in between reads again, since the queues may have forgotten the entry meanwhile.
    static var staleForwardLimit: Duration { .seconds(10) }
    /// How long after settling an entry its queues forget it; well past ``staleForwardLimit``.
    public static var forgettingDelay: Duration { .seconds(60) }
    /// Settled copies a replica remembers to have forgotten, at most (the oldest go first;
    /// their queues forget them after an hour anyway).
    static var maximumSettledCopies: Int { 100_000 }

    /// One entry of a topic's log.
    struct TopicLogEntry: Sendable {
        var topic: TopicName
        /// The id of its first message.
        var id: String
        var publishedAtMilliseconds: Int64
        var priority: Int
        /// `nil`: each queue's own delay.
        var delayMilliseconds: Int64?
        var targets: [TopicFanOut.Target]
        var messages: [TopicFanOut.Message]

        /// The messages target `index` takes, in order.
        func messages(of index: Int) -> [TopicFanOut.Message] { messages.filter { $0.targets.contains(index) } }
    }

    /// What one subscriber queue took of an entry.
    struct TopicCopies: Sendable {
        var target: Int
        var matched: Int
        var stored: Int
    }

    // MARK: Publishing

    func fanOutThroughLog(_ fanOut: TopicFanOut) async throws -> TopicFanOutResult {
        let (result, entry) = try await appendToLog(fanOut)
        guard let entry, case .published(var published) = result else { return result }
        let copies = await forward(entry, targets: Set(entry.targets.indices), readAt: .now)
        // A copy not made yet (its shard did not answer) is still on its way: counted as delivered,
        // as the subscriptions it matched will get it when a sweep forwards the entry.
        var deliveredTo = published.map { _ in 0 }
        let position = Dictionary(uniqueKeysWithValues: entry.messages.enumerated().map { ($1.id, $0) })
        for index in entry.targets.indices {
            let taken = entry.messages(of: index)
            let stored = copies.first { $0.target == index }?.stored ?? taken.count
            for message in taken.prefix(stored) { deliveredTo[position[message.id]!] += 1 }
        }
        for index in published.indices { published[index].deliveredTo = deliveredTo[index] }
        // With every copy made, a repeated idempotency key answers what was stored, as on a
        // single Redis (until then it answers the subscriptions that matched).
        var record: String?
        if fanOut.options.idempotencyKey != nil, copies.count == entry.targets.indices.filter({ !entry.messages(of: $0).isEmpty }).count {
            let now = published.first?.publishedAtMilliseconds ?? 0
            record = "\(now)|" + published.map { "\($0.id):\($0.deliveredTo)" }.joined(separator: ",")
        }
        do {
            try await settle(entry, copies, idempotencyKey: fanOut.options.idempotencyKey, record: record)
            noteSettled(entry, copies)
        } catch {
            // The copies are made; a sweep settles the entry (the queues remember them).
            logger.warning("a topic log entry was not settled; a sweep will", metadata: ["topic.name": "\(entry.topic)", "error": "\(error)"])
        }
        return .published(published)
    }

    /// Appends a publish to its topic's log (topic-append.lua) without forwarding it: the
    /// entry, or `nil` when nothing was appended (no message matched, or the answer is a refusal
    /// or a repeated idempotency key).
    func appendToLog(_ fanOut: TopicFanOut) async throws -> (TopicFanOutResult, TopicLogEntry?) {
        let reply = try await enqueue(publishArguments(fanOut), keys: topicScriptKeys, script: RedisQueueScripts.appendToTopicLog)
        guard let items = reply.array, let status = items.first?.integer else {
            throw QueueError.internalError("topic-append script returned \(reply)")
        }
        guard status == 1 else { return (try refusedPublish(status, reply, of: fanOut), nil) }
        guard items.count == 3 + fanOut.messages.count, let now = items[1].integer, let appended = items[2].integer else {
            throw QueueError.internalError("topic-append script returned \(reply)")
        }
        let published = zip(fanOut.messages, items.dropFirst(3)).map { message, matched in
            TopicPublished(id: message.id, topic: fanOut.topic, publishedAtMilliseconds: now, deliveredTo: Int(matched.integer ?? 0))
        }
        guard appended == 1, let first = fanOut.messages.first else { return (.published(published), nil) }
        let entry = TopicLogEntry(
            topic: fanOut.topic,
            id: first.id,
            publishedAtMilliseconds: now,
            priority: fanOut.options.priority,
            delayMilliseconds: fanOut.options.delay.map { max(0, $0.milliseconds) },
            targets: fanOut.targets,
            messages: fanOut.messages
        )
        return (.published(published), entry)
    }

    // MARK: Forwarding

    /// Copies `entry` into the queues of `targets` (indexes into its targets) that take any of
    /// its messages, all at once. A queue that could not be reached is left out of the answer
    /// (the entry stays in the log for a sweep); one past `MAX_QUEUES` takes nothing. Nothing is
    /// copied once `readAt` (when the entry and its targets were read or appended) is
    /// ``staleForwardLimit`` old.
    func forward(_ entry: TopicLogEntry, targets: Set<Int>, readAt: ContinuousClock.Instant) async -> [TopicCopies] {
        await withTaskGroup(of: TopicCopies?.self) { group in
            for index in targets.sorted() where entry.targets.indices.contains(index) {
                let messages = entry.messages(of: index)
                guard !messages.isEmpty else { continue }
                group.addTask {
                    guard ContinuousClock.now - readAt < Self.staleForwardLimit else { return nil }
                    do {
                        let stored = try await self.deliver(entry, messages, to: entry.targets[index].queue)
                        return TopicCopies(target: index, matched: messages.count, stored: stored)
                    } catch {
                        self.logger.warning(
                            "a topic's copies did not reach a subscriber queue; a sweep will forward them",
                            metadata: ["topic.name": "\(entry.topic)", "queue.name": "\(entry.targets[index].queue)", "error": "\(error)"]
                        )
                        return nil
                    }
                }
            }
            var copies: [TopicCopies] = []
            for await result in group { if let result { copies.append(result) } }
            return copies.sorted { $0.target < $1.target }
        }
    }

    /// topic-deliver.lua on one queue: how many of `messages` it stored (now or before).
    private func deliver(_ entry: TopicLogEntry, _ messages: [TopicFanOut.Message], to queue: QueueName) async throws -> Int {
        let keys = try await scriptKeys(queue: queue)
        func arguments(maximumQueues: Int64) -> [RedisArgument] {
            var arguments: [RedisArgument] = [
                .string(prefix), .string(queue.rawValue), .string(entry.topic.rawValue), .string(entry.id),
                .integer(Int64(entry.priority)), entry.delayMilliseconds.map { .integer($0) } ?? .string(""), .integer(maximumQueues),
                .integer(Int64(messages.count)),
            ]
            arguments.reserveCapacity(arguments.count + 2 * messages.count)
            for message in messages { arguments.append(.string(message.id)) }
            for message in messages { arguments.append(.bytes(message.body)) }
            return arguments
        }
        var reply = try await deliverOnce(arguments(maximumQueues: maximumQueuesArgument), keys: keys)
        if reply.array?.first?.integer == -3 {
            // A new queue: counted in the global registry first. Past MAX_QUEUES it takes
            // nothing, as on a single Redis.
            do {
                try await admit(queue)
            } catch let error as QueueError where error.kind == .tooManyQueues {
                return 0
            }
            reply = try await deliverOnce(arguments(maximumQueues: .max), keys: keys)
        }
        guard let items = reply.array, items.count == 2, let status = items[0].integer, status == 0 || status == 1, let stored = items[1].integer else {
            throw QueueError.internalError("topic-deliver script returned \(reply)")
        }
        return Int(stored)
    }

    /// One topic-deliver.lua run, waiting for Redis replicas when configured: the copies are
    /// settled only once they are on enough replicas, whether this run stored them or an
    /// earlier one did (its answer then is a write too, so the WAIT covers the earlier copies).
    private func deliverOnce(_ arguments: [RedisArgument], keys: [String]) async throws -> RedisValue {
        guard configuration.replicaAcknowledgements > 0 else {
            return try await mapErrors { try await client.evaluate(RedisQueueScripts.deliverTopicEntry, keys: keys, arguments: arguments) }
        }
        let (value, acknowledged) = try await mapErrors {
            try await client.evaluate(
                RedisQueueScripts.deliverTopicEntry,
                keys: keys,
                arguments: arguments,
                waitingForReplicas: configuration.replicaAcknowledgements,
                timeout: configuration.replicaTimeout
            )
        }
        if acknowledged < configuration.replicaAcknowledgements, let status = value.array?.first?.integer, status == 0 || status == 1 {
            throw QueueError.unavailable("a topic's copies reached the primary but only \(acknowledged) replicas confirmed them in time")
        }
        return value
    }

    /// topic-settle.lua: counts `copies` once each and removes the entry when all are made.
    /// - Returns: how many of the entry's queues are still to be copied to.
    @discardableResult
    func settle(_ entry: TopicLogEntry, _ copies: [TopicCopies], idempotencyKey: String? = nil, record: String? = nil) async throws -> Int {
        var arguments: [RedisArgument] = [.string(entry.topic.rawValue), .string(entry.id), .string(idempotencyKey ?? ""), .string(record ?? "")]
        for copy in copies {
            arguments += [
                .integer(Int64(copy.target + 1)), .string(entry.targets[copy.target].subscription.rawValue), .integer(Int64(copy.matched)),
                .integer(Int64(copy.stored)),
            ]
        }
        let reply = try await runTopicScript(RedisQueueScripts.settleTopicEntry, arguments)
        guard let left = reply.integer else { throw QueueError.internalError("topic-settle script returned \(reply)") }
        return Int(left)
    }

    // MARK: The sweep

    /// Redis Cluster: forwards the log entries that their publishing replica left behind (at
    /// least `grace` old), at most ``entriesPerSweep``, ``forwardsAtOnce`` at a time. Any replica
    /// may run it, and several at once: each takes its own entries for ``sweepClaim``, and each
    /// copy is stored once.
    /// - Returns: the entries that are now forwarded everywhere.
    @discardableResult
    public func forwardTopicLog(olderThan grace: Duration = RedisQueueBackend.forwardingGrace) async -> Int {
        guard clustered else { return 0 }
        let members: [RedisValue]
        do {
            let reply = try await runTopicScript(
                RedisQueueScripts.topicLog,
                [.string(""), .integer(max(0, grace.milliseconds)), .integer(Int64(Self.entriesPerSweep)), .integer(Self.sweepClaim.milliseconds)]
            )
            members = reply.array ?? []
        } catch {
            logger.debug("the topic log could not be read", metadata: ["error": "\(error)"])
            return 0
        }
        let entries: [(TopicName, String)] = members.compactMap { member in
            guard let text = member.string, let bar = text.firstIndex(of: "|"), let topic = TopicName(text[..<bar]) else { return nil }
            return (topic, String(text[text.index(after: bar)...]))
        }
        return await withTaskGroup(of: Bool.self) { group in
            var (next, finished) = (0, 0)
            func start() {
                guard next < entries.count else { return }
                let (topic, id) = entries[next]
                next += 1
                group.addTask { await self.forwardLeftBehind(topic, id) }
            }
            for _ in 0..<Self.forwardsAtOnce { start() }
            for await done in group {
                if done { finished += 1 }
                start()
            }
            return finished
        }
    }

    /// Forwards one entry a sweep took; whether it is now forwarded everywhere.
    private func forwardLeftBehind(_ topic: TopicName, _ id: String) async -> Bool {
        do {
            let readAt = ContinuousClock.now
            let reply = try await runTopicScript(RedisQueueScripts.topicLog, [.string(topic.rawValue), .integer(0), .integer(0), .string(id)])
            guard let parts = reply.array, parts.count == 2 else { throw QueueError.internalError("topic-log script returned \(reply)") }
            let todo = Set((parts[0].array ?? []).compactMap(\.integer).map { Int($0) - 1 })
            // Settled meanwhile (by the publishing replica or another sweep): nothing to do.
            guard !todo.isEmpty else { return true }
            guard let entry = Self.logEntry(topic: topic, id: id, parts[1].array ?? []) else {
                throw QueueError.internalError("topic \(topic) has a malformed log entry \(id)")
            }
            let copies = await forward(entry, targets: todo, readAt: readAt)
            let left = try await settle(entry, copies)
            noteSettled(entry, copies)
            return left == 0
        } catch {
            logger.error("a topic log entry could not be forwarded", metadata: ["topic.name": "\(topic)", "entry": "\(id)", "error": "\(error)"])
            return false
        }
    }

    // MARK: Forgetting

    /// Remembers the queues of `copies` settled now, for ``forgetSettledCopies()``.
    func noteSettled(_ entry: TopicLogEntry, _ copies: [TopicCopies]) {
        guard !copies.isEmpty else { return }
        let now = ContinuousClock.now
        settledCopies.withLock { settled in
            for copy in copies {
                settled.append(queue: entry.targets[copy.target].queue, marker: "\(entry.topic.rawValue)|\(entry.id)", at: now)
            }
            settled.trim(to: Self.maximumSettledCopies)
        }
    }

    /// Has each queue forget the entries this replica settled ``forgettingDelay`` ago or more
    /// (one topic-forget.lua run per queue and 1000 entries). A queue that cannot be reached now
    /// forgets them after an hour by itself.
    public func forgetSettledCopies(olderThan delay: Duration = RedisQueueBackend.forgettingDelay) async {
        guard clustered else { return }
        let due = settledCopies.withLock { $0.take(settledBefore: ContinuousClock.now - delay) }
        for (queue, markers) in due {
            for start in stride(from: 0, to: markers.count, by: 1000) {
                let page = markers[start..<min(markers.count, start + 1000)]
                do {
                    _ = try await run(RedisQueueScripts.forgetTopicEntries, on: queue, page.map { .string($0) })
                } catch {
                    logger.debug("a queue did not forget its settled topic copies", metadata: ["queue.name": "\(queue)", "error": "\(error)"])
                }
            }
        }
    }

    /// Reads an entry as topic-append.lua stores it: now, priority, delay ('' = each queue's),
    /// dedup window, T, T times (queue, subscription, filtered out), N, N times (id, body, k,
    /// k target indexes from 1).
    static func logEntry(topic: TopicName, id: String, _ items: [RedisValue]) -> TopicLogEntry? {
        var at = 0
        func next() -> RedisValue? {
            guard at < items.count else { return nil }
            defer { at += 1 }
            return items[at]
        }
        func integer() -> Int64? { next()?.integer }
        guard let now = integer(), let priority = integer(), let delay = next()?.string, integer() != nil, let targetCount = integer() else { return nil }
        var targets: [TopicFanOut.Target] = []
        for _ in 0..<max(0, targetCount) {
            guard let queue = next()?.string.flatMap(QueueName.init(stored:)), let subscription = next()?.string.flatMap(SubscriptionName.init),
                let filteredOut = integer()
            else { return nil }
            targets.append(TopicFanOut.Target(subscription: subscription, queue: queue, filteredOut: Int(filteredOut)))
        }
        guard let messageCount = integer() else { return nil }
        var messages: [TopicFanOut.Message] = []
        for _ in 0..<max(0, messageCount) {
            guard let messageID = next()?.string, let body = next()?.bytes, let count = integer() else { return nil }
            var indexes: [Int] = []
            for _ in 0..<max(0, count) {
                guard let index = integer(), (1...Int64(targets.count)).contains(index) else { return nil }
                indexes.append(Int(index) - 1)
            }
            messages.append(TopicFanOut.Message(id: messageID, body: body, targets: indexes))
        }
        guard at == items.count else { return nil }
        return TopicLogEntry(
            topic: topic,
            id: id,
            publishedAtMilliseconds: now,
            priority: Int(priority),
            delayMilliseconds: delay.isEmpty ? nil : Int64(delay),
            targets: targets,
            messages: messages
        )
    }
}

/// Topic copies a replica settled, in the order it settled them, until their queues forget them.
struct SettledTopicCopies: Sendable {
    private var items: [(queue: QueueName, marker: String, at: ContinuousClock.Instant)] = []
    private var start = 0

    var count: Int { items.count - start }

    mutating func append(queue: QueueName, marker: String, at instant: ContinuousClock.Instant) {
        items.append((queue, marker, instant))
    }

    /// Drops the oldest past `maximum`.
    mutating func trim(to maximum: Int) {
        if count > maximum { start += count - maximum }
        compact()
    }

    /// Takes those settled before `instant`, by queue.
    mutating func take(settledBefore instant: ContinuousClock.Instant) -> [QueueName: [String]] {
        var due: [QueueName: [String]] = [:]
        while start < items.count, items[start].at < instant {
            due[items[start].queue, default: []].append(items[start].marker)
            start += 1
        }
        compact()
        return due
    }

    private mutating func compact() {
        if start > 1024, start * 2 > items.count {
            items.removeFirst(start)
            start = 0
        }
    }
}
