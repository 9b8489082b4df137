import Logging
import NIOCore
import ServiceLifecycle
public import SkiffQueue
import SkiffRedis
import SkiffSupport
import Synchronization

/// Settings, dead letters, stats, the queue list, purge, delete, health.
extension RedisQueueBackend {
    // MARK: Settings, dead letters, management

    static let settingFields = [
        "visibilityTimeoutMs", "maxReceiveCount", "deadLetterQueue", "retryBackoffBaseMs", "retryBackoffCapMs", "retentionMs", "delayMs",
        "maxDepth", "dedupWindowMs", "partitions", "maxMessageBytes", "offloadThresholdBytes",
    ]

    public func settings(of queue: QueueName) async throws -> QueueSettings {
        let command = RedisCommand("HMGET", [.string(keys(queue).config)] + Self.settingFields.map { .string($0) })
        let reply = try await mapErrors { try await client.send(command, slotKey: keys(queue).config) }
        guard let values = reply.array, values.count == Self.settingFields.count else {
            throw QueueError.internalError("HMGET returned \(reply)")
        }
        func number(_ index: Int) -> Int64? { values[index].string.flatMap { Int64($0) } }
        let defaults = QueueSettings()
        return QueueSettings(
            // A value stored before the 100 ms floor existed reads as the floor, as the scripts use it.
            visibilityTimeoutMilliseconds: number(0).map { max($0, QueueSettings.minimumReceiveVisibilityMilliseconds) }
                ?? defaults.visibilityTimeoutMilliseconds,
            maxReceiveCount: number(1).map { Int($0) },
            deadLetterQueue: values[2].string.flatMap { QueueName(stored: $0) },
            retryBackoffBaseMilliseconds: number(3) ?? defaults.retryBackoffBaseMilliseconds,
            retryBackoffCapMilliseconds: number(4) ?? defaults.retryBackoffCapMilliseconds,
            retentionMilliseconds: number(5) ?? defaults.retentionMilliseconds,
            delayMilliseconds: number(6) ?? defaults.delayMilliseconds,
            maxDepth: number(7).map { Int($0) },
            dedupWindowMilliseconds: number(8) ?? defaults.dedupWindowMilliseconds,
            partitions: number(9).map { Int($0) } ?? defaults.partitions,
            maxMessageBytes: number(10).map { Int($0) },
            offloadThresholdBytes: number(11).map { Int($0) }
        )
    }

    public func updateSettings(_ settings: QueueSettings, of queue: QueueName) async throws {
        if clustered, let target = settings.deadLetterQueue, RedisQueueKeys.family(target.rawValue) != RedisQueueKeys.family(queue.rawValue) {
            // One script moves a dead letter; on a cluster it can only reach its own slot.
            throw QueueError.invalidArgument(
                "on a Redis Cluster deadLetterQueue must be \(queue)-dlq or another name that starts with '\(RedisQueueKeys.family(queue.rawValue))' followed only by '-dlq' suffixes (the dead-letter queue must share its queue's hash slot)"
            )
        }
        let values: [String?] = [
            String(settings.visibilityTimeoutMilliseconds), settings.maxReceiveCount.map(String.init), settings.deadLetterQueue?.rawValue,
            String(settings.retryBackoffBaseMilliseconds), String(settings.retryBackoffCapMilliseconds), String(settings.retentionMilliseconds),
            String(settings.delayMilliseconds), settings.maxDepth.map(String.init), String(settings.dedupWindowMilliseconds),
            settings.partitions == 1 ? nil : String(settings.partitions), settings.maxMessageBytes.map(String.init),
            settings.offloadThresholdBytes.map(String.init),
        ]
        var fields: [RedisArgument] = []
        for (field, value) in zip(Self.settingFields, values) {
            guard let value else { continue }
            fields.append(.string(field))
            fields.append(.string(value))
        }
        var reply = try await run(RedisQueueScripts.configure, on: queue, [.integer(maximumQueuesArgument)] + fields)
        if clustered, reply.integer == -3 {
            try await admit(queue)
            reply = try await run(RedisQueueScripts.configure, on: queue, [.integer(.max)] + fields)
        }
        if reply.integer == -3 { throw QueueError.tooManyQueues(queue, maximum: configuration.maximumQueues) }
        if let code = reply.integer, code <= -5 { throw QueueError.partitionsShrink(queue, current: Int(-4 - code)) }
    }

    public func redrive(into queue: QueueName, max: Int) async throws -> Int {
        guard max > 0 else { return 0 }
        var reply = try await run(RedisQueueScripts.redrive, on: queue, [.integer(Int64(max)), .integer(maximumQueuesArgument)])
        if clustered, reply.integer == -3 {
            try await admit(queue)
            reply = try await run(RedisQueueScripts.redrive, on: queue, [.integer(Int64(max)), .integer(.max)])
        }
        if reply.integer == -3 { throw QueueError.tooManyQueues(queue, maximum: configuration.maximumQueues) }
        return Int(reply.integer ?? 0)
    }

    public func stats(of queue: QueueName) async throws -> QueueStats {
        let reply = try await run(RedisQueueScripts.stats, on: queue)
        let fields = RedisQueueScripts.counterFields.count
        guard let values = reply.array?.compactMap(\.integer), values.count == 5 + 2 * fields else {
            throw QueueError.internalError("stats script returned \(reply)")
        }
        var stats = QueueStats()
        stats.ready = Int(values[0])
        stats.inFlight = Int(values[1])
        stats.delayed = Int(values[2])
        stats.deadLetterReady = Int(values[3])
        stats.oldestReadyAgeMilliseconds = values[4] >= 0 ? values[4] : nil
        stats.totals = Self.counters(values[5..<(5 + fields)])
        stats.lastMinute = Self.counters(values[(5 + fields)...])
        return stats
    }

    public func peek(_ queue: QueueName, limit: Int, maximumBytes: Int) async throws -> [QueueMessage] {
        let reply = try await run(RedisQueueScripts.peek, on: queue, [.integer(Int64(max(0, limit))), .integer(Int64(max(0, maximumBytes)))])
        guard let items = reply.array, items.count % 3 == 0 else { throw QueueError.internalError("peek script returned \(reply)") }
        return try stride(from: 0, to: items.count, by: 3).map { index in
            guard let bytes = items[index].bytes, let envelope = RedisEnvelope.parse(bytes) else {
                throw QueueError.internalError("queue \(queue) holds a malformed message")
            }
            let reason = items[index + 1].string.flatMap { $0.isEmpty ? nil : $0 }
            let history = items[index + 2].string.flatMap { $0.isEmpty ? nil : $0 }
            return envelope.message(lastError: reason, history: history).0
        }
    }

    public func lookUp(_ id: String, in queue: QueueName) async throws -> MessageLookup {
        // An id holds no '|' (it would end the envelope's field); nothing with one can be found.
        guard !id.isEmpty, !id.contains("|") else { return .notFound(searchedAll: true) }
        let reply = try await run(
            RedisQueueScripts.lookUp,
            on: queue,
            [.string(id), .integer(Int64(MessageLookup.maximumScanned)), .integer(Int64(MessageLookup.maximumScannedBytes))]
        )
        guard let items = reply.array, let state = items.first?.string else { throw QueueError.internalError("lookup script returned \(reply)") }
        guard let found = MessageState(rawValue: state) else { return .notFound(searchedAll: items.count > 1 && items[1].integer == 1) }
        guard items.count == 4, let bytes = items[1].bytes, let envelope = RedisEnvelope.parse(bytes) else {
            throw QueueError.internalError("queue \(queue) holds a malformed message")
        }
        let reason = items[2].string.flatMap { $0.isEmpty ? nil : $0 }
        let history = items[3].string.flatMap { $0.isEmpty ? nil : $0 }
        return .found(envelope.message(lastError: reason, history: history).0, found)
    }

    /// One script per slot that holds queues on a cluster (each slot has its own graveyard).
    public func takeBuriedPayloads(max: Int) async throws -> [String] {
        guard clustered else {
            return (try await run(RedisQueueScripts.takeBuried, on: nil, [.integer(Int64(max))]).array ?? []).compactMap(\.string)
        }
        var taken: [String] = []
        for slot in try await slotsInUse() where taken.count < max {
            let reply = try await run(RedisQueueScripts.takeBuried, on: nil, slot: slot, [.integer(Int64(max - taken.count))])
            taken += (reply.array ?? []).compactMap(\.string)
        }
        return taken
    }

    public func recordHistory(_ sample: QueueHistorySample, of queue: QueueName, interval: Duration) async throws {
        let figures =
            [Int64(sample.ready), Int64(sample.inFlight), Int64(sample.delayed), Int64(sample.deadLetter)]
            + [sample.enqueued, sample.delivered, sample.acknowledged]
        let step = max(interval, QueueHistorySample.minimumInterval)
        _ = try await run(
            RedisQueueScripts.recordHistory,
            on: queue,
            [.integer(step.milliseconds)] + figures.map { .integer($0) }
        )
    }

    public func history(of queue: QueueName) async throws -> [QueueHistorySample] {
        let reply = try await run(RedisQueueScripts.history, on: queue)
        guard let items = reply.array else { throw QueueError.internalError("history script returned \(reply)") }
        return try items.map { item in
            let fields = (item.string ?? "").split(separator: "|").compactMap { Int64($0) }
            guard fields.count == 9 else { throw QueueError.internalError("queue \(queue) holds a malformed history sample") }
            return QueueHistorySample(
                atMilliseconds: fields[0],
                measuredAtMilliseconds: fields[1],
                ready: Int(fields[2]),
                inFlight: Int(fields[3]),
                delayed: Int(fields[4]),
                deadLetter: Int(fields[5]),
                enqueued: fields[6],
                delivered: fields[7],
                acknowledged: fields[8]
            )
        }
    }

    static func counters(_ values: ArraySlice<Int64>) -> QueueCounters {
        var counters = QueueCounters()
        let v = Array(values)
        counters.enqueued = v[0]
        counters.delivered = v[1]
        counters.acknowledged = v[2]
        counters.retried = v[3]
        counters.deadLettered = v[4]
        counters.expired = v[5]
        return counters
    }

    /// Incremental: one short script run per page of about 100 queues (`SSCAN`), so a service
    /// with many queues never runs one long script; a queue created or deleted meanwhile may or
    /// may not be listed.
    public func queues() async throws -> [QueueSummary] {
        guard clustered else { return try await queues(slot: nil) }
        // On a cluster each slot has its own queue set: 16 slots at a time.
        let slots = try await slotsInUse(fresh: true)
        var summaries: [QueueSummary] = []
        try await withThrowingTaskGroup(of: [QueueSummary].self) { group in
            var next = slots.makeIterator()
            for _ in 0..<16 {
                guard let slot = next.next() else { break }
                group.addTask { try await self.queues(slot: slot) }
            }
            while let page = try await group.next() {
                summaries += page
                if let slot = next.next() { group.addTask { try await self.queues(slot: slot) } }
            }
        }
        return summaries.sorted { $0.name < $1.name }
    }

    /// The queues of one slot's set (the whole set on a single Redis), a page of about 100 at a time.
    func queues(slot: Int?) async throws -> [QueueSummary] {
        var summaries: [QueueSummary] = []
        var seen: Set<QueueName> = []
        var cursor = "0"
        repeat {
            let reply = try await run(RedisQueueScripts.list, on: nil, slot: slot, [.string(cursor), .integer(100)])
            guard let values = reply.array, values.count % 4 == 1, let next = values[0].string else {
                throw QueueError.internalError("list script returned \(reply)")
            }
            cursor = next
            // A set scan may return a member twice (while Redis resizes the set).
            for summary in Self.summaries(values.dropFirst()) where seen.insert(summary.name).inserted { summaries.append(summary) }
        } while cursor != "0" && summaries.count <= configuration.maximumQueues * 2
        return summaries.sorted { $0.name < $1.name }
    }

    static func summaries(_ values: ArraySlice<RedisValue>) -> [QueueSummary] {
        var summaries: [QueueSummary] = []
        for index in stride(from: values.startIndex, to: values.endIndex, by: 4) {
            guard let name = values[index].string.flatMap({ QueueName(stored: $0) }) else { continue }
            summaries.append(
                QueueSummary(
                    name: name,
                    ready: Int(values[index + 1].integer ?? 0),
                    inFlight: Int(values[index + 2].integer ?? 0),
                    delayed: Int(values[index + 3].integer ?? 0)
                )
            )
        }
        return summaries.sorted { $0.name < $1.name }
    }

    @discardableResult
    public func purge(_ queue: QueueName) async throws -> Int {
        let reply = try await run(RedisQueueScripts.purge, on: queue, [.string("0")])
        return Int(reply.array?.first?.integer ?? 0)
    }

    @discardableResult
    public func delete(_ queue: QueueName) async throws -> Bool {
        let reply = try await run(RedisQueueScripts.purge, on: queue, [.string("1")])
        try await unregister(queue)
        return reply.array?.last?.integer == 1
    }

    public func health() async -> BackendHealth {
        let redis = client.health
        let subscribed = subscriber.isConnected
        var details = [
            "redis.connected": "\(redis.isConnected)",
            "redis.subscriber.connected": "\(subscribed)",
            "redis.connections": "\(redis.openConnections)",
            "redis.reconnects": "\(redis.reconnects)",
            "waiters": "\(waiters.totalCount)",
        ]
        if let error = redis.lastError { details["redis.error"] = error }
        return BackendHealth(isHealthy: redis.isConnected, backend: "redis", details: details)
    }

    /// Consumers waiting on this replica.
    public var waiterCount: Int { waiters.totalCount }
}
