import Logging
import NIOCore
import ServiceLifecycle
import SkiffRedis
import SkiffSupport
import Synchronization

/// Settings of the Redis backend.
public struct RedisQueueConfiguration: Sendable {
    /// Prefix of every key (`skiff:{queue}:ready`...).
    public var keyPrefix: String
    /// How long a claimed message may stay unsettled before any replica returns it to its queue.
    /// This bounds recovery after a replica is killed between claim and response.
    public var claimLease: Duration
    /// How often each replica looks for expired leases (at most a quarter of the lease).
    public var sweepInterval: Duration
    /// How long a queue's notification channel stays subscribed after its last waiter left.
    public var idleUnsubscribeAfter: Duration
    /// When above 0, a send is acknowledged only once this many Redis replicas hold it (`WAIT`),
    /// narrowing what a failover can lose; otherwise the send fails as indeterminate.
    public var replicaAcknowledgements: Int
    /// How long a send waits for those replicas.
    public var replicaTimeout: Duration
    /// Queues the service may hold (`MAX_QUEUES`): a send, a settings change or a redrive that
    /// would create one more is refused. Dead-letter queues are exempt.
    public var maximumQueues: Int

    public init(
        keyPrefix: String = "skiff",
        claimLease: Duration = .seconds(30),
        sweepInterval: Duration = .seconds(1),
        idleUnsubscribeAfter: Duration = .seconds(30),
        replicaAcknowledgements: Int = 0,
        replicaTimeout: Duration = .milliseconds(100),
        maximumQueues: Int = QueueSettings.defaultMaximumQueues
    ) {
        self.maximumQueues = maximumQueues
        self.keyPrefix = keyPrefix
        self.claimLease = claimLease
        self.sweepInterval = min(sweepInterval, claimLease / 4)
        self.idleUnsubscribeAfter = idleUnsubscribeAfter
        self.replicaAcknowledgements = replicaAcknowledgements
        self.replicaTimeout = replicaTimeout
    }
}

/// Queues in Redis, shared by any number of replicas. Every state change in
/// docs/message-lifecycle.md is one Lua script (``RedisQueueScripts``).
///
/// - Send: one script stores the messages (or finds the idempotency key) and publishes a wake-up
///   on the queue's channel.
/// - Receive: one script pops from the head of the highest priority and leases the messages
///   (in-flight hash + lease sorted set, Redis clock). Consumers that must wait register locally;
///   one subscriber connection per replica listens on the channels of queues that have waiters,
///   and a wake-up runs a claim pass that hands messages to the oldest local waiters. Waiting costs
///   no Redis connection and no polling.
/// - Complete / ack delete a claim its token still holds; release and nack put it back; sweeps on
///   every replica return expired claims, make due delayed messages ready (every 50 ms) and remove
///   messages past retention, each touching only the queues an index says are due.
public final class RedisQueueBackend: ClaimingBackend, Service {
    private struct PassState {
        var running = false
        var rerun = false
    }

    private struct State {
        var passes: [QueueName: PassState] = [:]
        var lastWaiterSeen: [QueueName: ContinuousClock.Instant] = [:]
        /// Wake-ups received per queue with waiters (see ``WakeToken``).
        var notifications: [QueueName: UInt64] = [:]
        /// Per queue, the token taken before the latest claim on this replica that emptied it (got
        /// fewer messages than it asked for). While it still matches, the queue has been empty ever
        /// since, as far as any consumer can tell: a waiter needs no claim of its own.
        var exhaustedAt: [QueueName: WakeToken] = [:]
        var isShuttingDown = false
        var disconnectedSince: ContinuousClock.Instant?
    }

    public let client: RedisClient
    public let configuration: RedisQueueConfiguration
    private let waiters: WaiterRegistry
    /// Claim passes run on the waiter registry's event loop, where wake-ups and timers are.
    private let passExecutor: EventLoopTaskExecutor
    private let logger: Logger
    private let state = Mutex(State())
    private let subscriberBox = Mutex<RedisSubscriber?>(nil)
    private let prefix: String
    /// Claims per pass; a pass repeats while it fills up and waiters remain.
    private static let maximumClaimBatch = 64
    /// How often due delayed messages are looked for: delivery within 100 ms of due.
    private static let delayPollInterval = Duration.milliseconds(50)

    /// Sends to one queue with the same delay and priority: one `enqueue` script for concurrent requests.
    private struct SendBatchKey: Hashable, Sendable {
        let queue: QueueName
        let delayMilliseconds: Int64?
        let priority: Int
    }

    /// Concurrent sends, claims and acks on the same queue share one script run (see ``Coalescer``).
    private let sendBatches = Mutex<Coalescer<SendBatchKey, ByteBuffer, SentMessage>?>(nil)
    private let claimBatches = Mutex<Coalescer<QueueName, ReceiveMode, Delivery>?>(nil)
    private let acknowledgeBatches = Mutex<Coalescer<QueueName, Receipt, Bool>?>(nil)

    public init(client: RedisClient, configuration: RedisQueueConfiguration = .init(), eventLoop: any EventLoop, logger: Logger) {
        self.client = client
        self.configuration = configuration
        self.waiters = WaiterRegistry(eventLoop: eventLoop)
        self.passExecutor = EventLoopTaskExecutor.shared(for: eventLoop)
        self.logger = logger
        self.prefix = configuration.keyPrefix
        let prefix = configuration.keyPrefix
        // Wake-ups arrive on the loop where the claim passes run: no thread hop between them.
        let subscriber = client.makeSubscriber(
            on: eventLoop,
            onMessage: { [weak self] channel, _ in
                guard let self, let queue = RedisQueueKeys.queue(fromChannel: channel, prefix: prefix) else { return }
                self.state.withLock { $0.notifications[queue, default: 0] &+= 1 }
                self.kick(queue)
            },
            onConnectionChange: { [weak self] connected in self?.subscriberConnectionChanged(connected) }
        )
        subscriberBox.withLock { $0 = subscriber }
        // Messages per merged call: the scripts push 1000 values per command.
        sendBatches.withLock {
            $0 = Coalescer(maximumItems: 1000) { [weak self] key, members in
                guard let self else { return members.map { _ in .failure(QueueError.unavailable("the backend is shut down")) } }
                return await self.sendMerged(key, members)
            }
        }
        claimBatches.withLock {
            $0 = Coalescer(maximumItems: 1000, shielded: true) { [weak self] queue, members in
                guard let self else { return members.map { _ in .failure(QueueError.unavailable("the backend is shut down")) } }
                return await Self.split(members) { try await self.claim(queue, modes: members.flatMap { $0 }) }
            }
        }
        acknowledgeBatches.withLock {
            $0 = Coalescer(maximumItems: 1000) { [weak self] queue, members in
                guard let self else { return members.map { _ in .failure(QueueError.unavailable("the backend is shut down")) } }
                return await Self.split(members) { try await self.acknowledgeNow(members.flatMap { $0 }, in: queue) }
            }
        }
    }

    /// Runs one merged call and gives each member its share of the outputs, in order (a claim may
    /// return fewer than asked: the earliest members are served first).
    private static func split<Item, Output>(
        _ members: [[Item]],
        _ call: () async throws -> [Output]
    ) async -> [Result<[Output], any Error>] {
        do {
            return split(try await call(), as: members)
        } catch {
            return members.map { _ in .failure(error) }
        }
    }

    /// One `enqueue` for several sends; when the merged batch does not fit the queue's `maxDepth`,
    /// each send is tried alone, so a full queue refuses exactly the sends it would refuse one by one.
    private func sendMerged(_ key: SendBatchKey, _ members: [[ByteBuffer]]) async -> [Result<[SentMessage], any Error>] {
        var options = SendOptions()
        options.delay = key.delayMilliseconds.map { .milliseconds($0) }
        options.priority = key.priority
        let queue = key.queue
        if members.count > 1 {
            do {
                let sent = try await store(members.flatMap { $0 }, to: queue, options: options)
                return Self.split(sent, as: members)
            } catch let error as QueueError where error.kind == .queueFull {
                // Fall through: one by one.
            } catch {
                return members.map { _ in .failure(error) }
            }
        }
        var results: [Result<[SentMessage], any Error>] = []
        for bodies in members {
            do {
                results.append(.success(try await store(bodies, to: queue, options: options)))
            } catch {
                results.append(.failure(error))
            }
        }
        return results
    }

    private static func split<Item, Output>(_ outputs: [Output], as members: [[Item]]) -> [Result<[Output], any Error>] {
        var rest = outputs[...]
        return members.map { items in
            let share = rest.prefix(items.count)
            rest = rest.dropFirst(share.count)
            return .success(Array(share))
        }
    }

    private var subscriber: RedisSubscriber { subscriberBox.withLock { $0! } }

    private func keys(_ queue: QueueName) -> RedisQueueKeys { RedisQueueKeys(prefix: prefix, queue: queue) }

    /// Runs one of the queue scripts on `queue` (every script takes the prefix and the queue first).
    private func run(_ script: RedisScript, on queue: QueueName?, _ arguments: [RedisArgument] = []) async throws -> RedisValue {
        var all: [RedisArgument] = [.string(prefix), .string(queue?.rawValue ?? "")]
        all.append(contentsOf: arguments)
        return try await mapErrors { try await client.evaluate(script, keys: [], arguments: all) }
    }

    // MARK: Sending

    public func send(_ bodies: [ByteBuffer], to queue: QueueName, options: SendOptions) async throws -> [SentMessage] {
        guard !bodies.isEmpty else { return [] }
        try options.validate()
        // A send with an idempotency key answers for its own key: never merged.
        guard options.idempotencyKey == nil, let batches = sendBatches.withLock({ $0 }) else {
            return try await store(bodies, to: queue, options: options)
        }
        let key = SendBatchKey(queue: queue, delayMilliseconds: options.delay.map { max(0, $0.milliseconds) }, priority: options.priority)
        return try await batches.submit(bodies, for: key)
    }

    /// Stores `bodies` with one `enqueue` script run.
    private func store(_ bodies: [ByteBuffer], to queue: QueueName, options: SendOptions) async throws -> [SentMessage] {
        let ids = bodies.map { _ in MessageID.make() }
        var arguments: [RedisArgument] = [.string(prefix), .string(queue.rawValue)]
        arguments.reserveCapacity(6 + 2 * bodies.count)
        arguments.append(options.delay.map { .integer(max(0, $0.milliseconds)) } ?? .string(""))
        arguments.append(.integer(Int64(options.priority)))
        arguments.append(.string(options.idempotencyKey ?? ""))
        arguments.append(.integer(Int64(configuration.maximumQueues)))
        arguments.append(.integer(Int64(bodies.count)))
        for id in ids { arguments.append(.string(id)) }
        for body in bodies { arguments.append(.bytes(body)) }
        let reply: RedisValue
        if configuration.replicaAcknowledgements > 0 {
            let (value, acknowledged) = try await mapErrors {
                try await client.evaluate(
                    RedisQueueScripts.enqueue,
                    keys: [],
                    arguments: arguments,
                    waitingForReplicas: configuration.replicaAcknowledgements,
                    timeout: configuration.replicaTimeout
                )
            }
            if acknowledged < configuration.replicaAcknowledgements, value.array?.first?.integer == 1 {
                throw QueueError.unavailable(
                    "the message reached the primary but only \(acknowledged) of \(configuration.replicaAcknowledgements) replicas confirmed it in time; it may or may not be delivered"
                )
            }
            reply = value
        } else {
            reply = try await mapErrors { try await client.evaluate(RedisQueueScripts.enqueue, keys: [], arguments: arguments) }
        }
        guard let items = reply.array, items.count == 2, let status = items[0].integer else {
            throw QueueError.internalError("enqueue script returned \(reply)")
        }
        switch status {
        case 1:
            guard let enqueuedAt = items[1].integer else { throw QueueError.internalError("enqueue script returned \(reply)") }
            return ids.map { SentMessage(id: $0, queue: queue, enqueuedAtMilliseconds: enqueuedAt) }
        case 0:
            // "<enqueuedAt>|<id>,<id>...": the send that stored this idempotency key.
            guard let original = items[1].string, let bar = original.firstIndex(of: "|"), let enqueuedAt = Int64(original[..<bar]) else {
                throw QueueError.internalError("malformed idempotency record in \(queue)")
            }
            return original[original.index(after: bar)...].split(separator: ",").map {
                SentMessage(id: String($0), queue: queue, enqueuedAtMilliseconds: enqueuedAt, isDuplicate: true)
            }
        case -1:
            throw QueueError.queueFull(queue, maxDepth: Int(items[1].integer ?? 0))
        case -3:
            throw QueueError.tooManyQueues(queue, maximum: Int(items[1].integer ?? 0))
        case -2:
            throw QueueError.invalidArgument("delay must be at most the queue's retentionMs (\(items[1].integer ?? 0) ms)")
        default:
            throw QueueError.internalError("enqueue script returned \(reply)")
        }
    }

    // MARK: Receiving and settling

    public func receive(from queue: QueueName, max: Int, timeout: Duration, mode: ReceiveMode) async throws -> [Delivery] {
        // A claim that ran in Redis must reach a consumer or go back; cancelling the command
        // mid-flight would strand the messages until their lease expires. So the claim finishes,
        // and a caller that was cancelled meanwhile gives the messages back at once.
        let modes = Array(repeating: mode, count: Swift.max(1, max))
        // Taken before the claim: if it finds nothing and nothing is published until the wait is
        // registered, the wait needs no claim of its own.
        let token = wakeToken(for: queue)
        // A claim taken under this same token emptied the queue, and nothing was published since:
        // this consumer would find nothing, so it waits at once, and the next wake-up finds it.
        // Only a consumer that waits: a poll with no timeout claims, so that it sees a message
        // whose send has returned even if its wake-up is still on its way here.
        if timeout > .zero, let token, state.withLock({ $0.exhaustedAt[queue] == token }) {
            return try await wait(for: queue, timeout: timeout, mode: mode, quietSince: token)
        }
        let claimed: [Delivery]
        if let batches = claimBatches.withLock({ $0 }) {
            // Shielded per batch by the coalescer.
            claimed = try await batches.submit(modes, for: queue)
        } else {
            claimed = try await shielded { try await self.claim(queue, modes: modes) }
        }
        // A merged claim serves its earliest members first: fewer than asked means it emptied the queue.
        if claimed.count < modes.count, let token { noteExhausted(queue, since: token) }
        if !claimed.isEmpty {
            if Task.isCancelled {
                try await shielded { try await self.release(claimed) }
                throw CancellationError()
            }
            return claimed
        }
        return try await wait(for: queue, timeout: timeout, mode: mode, quietSince: token)
    }

    public func claimReady(from queue: QueueName, max: Int, maxBytes: Int?, mode: ReceiveMode) async throws -> ClaimedMessages {
        // Without a byte limit (or for one message, which always fits) the merged claims serve it.
        guard let maxBytes, max > 1 else { return ClaimedMessages(deliveries: try await receive(from: queue, max: max, timeout: .zero, mode: mode)) }
        // A claim that ran in Redis must reach a consumer or go back (see `receive`).
        let claimed = try await shielded {
            try await self.claim(queue, modes: Array(repeating: mode, count: max), byteLimit: Swift.max(1, maxBytes))
        }
        if Task.isCancelled, !claimed.deliveries.isEmpty {
            try await shielded { try await self.release(claimed.deliveries) }
            throw CancellationError()
        }
        return claimed
    }

    /// Records that a claim started under `token` got fewer messages than it asked for.
    private func noteExhausted(_ queue: QueueName, since token: WakeToken) {
        state.withLock { $0.exhaustedAt[queue] = token }
    }

    public func wait(for queue: QueueName, timeout: Duration, mode: ReceiveMode) async throws -> [Delivery] {
        try await wait(for: queue, timeout: timeout, mode: mode, quietSince: nil)
    }

    /// Proof that nothing was published on a queue's channel since a moment: the subscription stayed
    /// up (same connection) and no wake-up arrived. Taken before a claim that then found the queue
    /// empty, it shows that a waiter registered after the claim missed nothing, so the claim pass a
    /// new waiter starts (for messages sent while it was registering) can be skipped; and while the
    /// latest such claim's token still matches, so can a new consumer's first claim
    /// (``State/exhaustedAt``): every way a message becomes ready publishes a wake-up.
    struct WakeToken: Equatable {
        let generation: UInt64
        let notifications: UInt64
    }

    func wakeToken(for queue: QueueName) -> WakeToken? {
        guard let generation = subscriber.confirmedGeneration(of: keys(queue).channel) else { return nil }
        return WakeToken(generation: generation, notifications: state.withLock { $0.notifications[queue, default: 0] })
    }

    func wait(for queue: QueueName, timeout: Duration, mode: ReceiveMode, quietSince token: WakeToken?) async throws -> [Delivery] {
        if timeout <= .zero || state.withLock({ $0.isShuttingDown }) { return [] }
        let outcome = await waiters.wait(on: queue, timeout: timeout, mode: mode) {
            Task(executorPreference: self.passExecutor) { await self.prepareToWait(on: queue, quietSince: token) }
        }
        let delivery = try await outcome.delivery { delivery in try await self.shielded { try await self.release([delivery]) } }
        return delivery.map { [$0] } ?? []
    }

    @discardableResult
    public func complete(_ delivery: Delivery) async throws -> Bool {
        // The response is already with the client: keep trying (through a Redis restart, say)
        // until the lease ends, after which a sweep may hand the message out again.
        let giveUpAt = delivery.claimedAt + delivery.lease
        var attempt = 0
        while true {
            do {
                let completed = try await acknowledge([delivery.receipt], in: delivery.queue)[0]
                if !completed {
                    logger.error(
                        "claim was recovered before completion; the message may be delivered twice",
                        metadata: ["queue.name": "\(delivery.queue)", "message.id": "\(delivery.message.id)"]
                    )
                }
                return completed
            } catch let error as QueueError where error.kind == .unavailable && ContinuousClock.now < giveUpAt {
                attempt += 1
                try await Task.sleep(for: .milliseconds(min(50 << min(attempt, 4), 500)))
            }
        }
    }

    public func release(_ delivery: Delivery) async throws {
        try await release([delivery])
    }

    public func confirm(_ delivery: Delivery) async throws -> Bool {
        guard delivery.needsFenceCheck else { return true }
        return try await changeVisibility(delivery.receipt, in: delivery.queue, timeout: delivery.lease)
    }

    public func acknowledge(_ receipts: [Receipt], in queue: QueueName) async throws -> [Bool] {
        guard !receipts.isEmpty else { return [] }
        guard let batches = acknowledgeBatches.withLock({ $0 }) else { return try await acknowledgeNow(receipts, in: queue) }
        return try await batches.submit(receipts, for: queue)
    }

    private func acknowledgeNow(_ receipts: [Receipt], in queue: QueueName) async throws -> [Bool] {
        var arguments: [RedisArgument] = []
        arguments.reserveCapacity(2 * receipts.count)
        for receipt in receipts {
            arguments.append(.string(receipt.messageID))
            arguments.append(.integer(Int64(receipt.claimToken)))
        }
        let reply = try await run(RedisQueueScripts.acknowledge, on: queue, arguments)
        guard let results = reply.array, results.count == receipts.count else {
            throw QueueError.internalError("acknowledge script returned \(reply)")
        }
        return results.map { $0.integer == 1 }
    }

    public func reject(_ receipt: Receipt, in queue: QueueName, delay: Duration?, reason: String?) async throws -> Bool {
        let reply = try await run(
            RedisQueueScripts.reject,
            on: queue,
            [
                .string(receipt.messageID), .integer(Int64(receipt.claimToken)),
                delay.map { .integer(max(0, $0.milliseconds)) } ?? .string(""),
                .string(String(Double.random(in: 0..<1))),
                .string(reason == nil ? "0" : "1"), .string(reason ?? ""),
            ]
        )
        return reply.integer == 1
    }

    public func changeVisibility(_ receipt: Receipt, in queue: QueueName, timeout: Duration) async throws -> Bool {
        let reply = try await run(
            RedisQueueScripts.changeVisibility,
            on: queue,
            [.string(receipt.messageID), .integer(Int64(receipt.claimToken)), .integer(max(0, timeout.milliseconds))]
        )
        return reply.integer == 1
    }

    /// Claims one message per entry of `modes` (oldest message for the first), fewer if the queue
    /// runs out.
    func claim(_ queue: QueueName, modes: [ReceiveMode]) async throws -> [Delivery] {
        try await claim(queue, modes: modes, byteLimit: 0).deliveries
    }

    /// Claims one message per entry of `modes`, fewer if the queue runs out or, past the first
    /// message, the envelopes would pass `byteLimit` (0: no limit). Redis never copies more than
    /// the limit plus one message into the reply.
    func claim(_ queue: QueueName, modes: [ReceiveMode], byteLimit: Int) async throws -> ClaimedMessages {
        let claimedAt = ContinuousClock.now
        let leases: [RedisArgument] = modes.map { mode in
            switch mode {
            case .autoAcknowledge: .integer(configuration.claimLease.milliseconds)
            case .acknowledge(let visibility): visibility.map { .integer(max(1, $0.milliseconds)) } ?? .string("")
            }
        }
        let reply = try await run(RedisQueueScripts.claim, on: queue, [.integer(Int64(max(0, byteLimit)))] + leases)
        guard let values = reply.array, values.count % 4 == 1, let stopped = values.last?.integer else {
            throw QueueError.internalError("claim script returned \(reply)")
        }
        var deliveries: [Delivery] = []
        deliveries.reserveCapacity(values.count / 4)
        for index in stride(from: 0, to: values.count - 1, by: 4) {
            guard let envelope = values[index].bytes, let leaseMilliseconds = values[index + 3].integer,
                let (message, claimToken) = Self.parseEnvelope(
                    envelope,
                    lastError: values[index + 1].string,
                    history: values[index + 2].string
                )
            else {
                throw QueueError.internalError("malformed message envelope in \(queue)")
            }
            let mode = modes[index / 4]
            deliveries.append(
                Delivery(
                    queue: queue,
                    message: message,
                    claimToken: claimToken,
                    claimedAt: claimedAt,
                    lease: .milliseconds(leaseMilliseconds),
                    isAcknowledgedMode: mode != .autoAcknowledge
                )
            )
        }
        return ClaimedMessages(deliveries: deliveries, stoppedAtByteLimit: stopped == 1)
    }

    private func release(_ deliveries: [Delivery]) async throws {
        guard let queue = deliveries.first?.queue else { return }
        var arguments: [RedisArgument] = []
        for delivery in deliveries {
            arguments.append(.string(delivery.message.id))
            arguments.append(.integer(Int64(delivery.claimToken)))
        }
        _ = try await run(RedisQueueScripts.release, on: queue, arguments)
    }

    // MARK: Settings, dead letters, management

    private static let settingFields = [
        "visibilityTimeoutMs", "maxReceiveCount", "deadLetterQueue", "retryBackoffBaseMs", "retryBackoffCapMs", "retentionMs", "delayMs",
        "maxDepth", "dedupWindowMs",
    ]

    public func settings(of queue: QueueName) async throws -> QueueSettings {
        let command = RedisCommand("HMGET", [.string(keys(queue).config)] + Self.settingFields.map { .string($0) })
        let reply = try await mapErrors { try await client.send(command) }
        guard let values = reply.array, values.count == Self.settingFields.count else {
            throw QueueError.internalError("HMGET returned \(reply)")
        }
        func number(_ index: Int) -> Int64? { values[index].string.flatMap { Int64($0) } }
        let defaults = QueueSettings()
        return QueueSettings(
            visibilityTimeoutMilliseconds: number(0) ?? defaults.visibilityTimeoutMilliseconds,
            maxReceiveCount: number(1).map { Int($0) },
            deadLetterQueue: values[2].string.flatMap { QueueName($0) },
            retryBackoffBaseMilliseconds: number(3) ?? defaults.retryBackoffBaseMilliseconds,
            retryBackoffCapMilliseconds: number(4) ?? defaults.retryBackoffCapMilliseconds,
            retentionMilliseconds: number(5) ?? defaults.retentionMilliseconds,
            delayMilliseconds: number(6) ?? defaults.delayMilliseconds,
            maxDepth: number(7).map { Int($0) },
            dedupWindowMilliseconds: number(8) ?? defaults.dedupWindowMilliseconds
        )
    }

    public func updateSettings(_ settings: QueueSettings, of queue: QueueName) async throws {
        let values: [String?] = [
            String(settings.visibilityTimeoutMilliseconds), settings.maxReceiveCount.map(String.init), settings.deadLetterQueue?.rawValue,
            String(settings.retryBackoffBaseMilliseconds), String(settings.retryBackoffCapMilliseconds), String(settings.retentionMilliseconds),
            String(settings.delayMilliseconds), settings.maxDepth.map(String.init), String(settings.dedupWindowMilliseconds),
        ]
        var arguments: [RedisArgument] = [.integer(Int64(configuration.maximumQueues))]
        for (field, value) in zip(Self.settingFields, values) {
            guard let value else { continue }
            arguments.append(.string(field))
            arguments.append(.string(value))
        }
        let reply = try await run(RedisQueueScripts.configure, on: queue, arguments)
        if reply.integer == -3 { throw QueueError.tooManyQueues(queue, maximum: configuration.maximumQueues) }
    }

    public func redrive(into queue: QueueName, max: Int) async throws -> Int {
        guard max > 0 else { return 0 }
        let reply = try await run(RedisQueueScripts.redrive, on: queue, [.integer(Int64(max)), .integer(Int64(configuration.maximumQueues))])
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

    private static func counters(_ values: ArraySlice<Int64>) -> QueueCounters {
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
        var summaries: [QueueSummary] = []
        var seen: Set<QueueName> = []
        var cursor = "0"
        repeat {
            let reply = try await run(RedisQueueScripts.list, on: nil, [.string(cursor), .integer(100)])
            guard let values = reply.array, values.count % 4 == 1, let next = values[0].string else {
                throw QueueError.internalError("list script returned \(reply)")
            }
            cursor = next
            // A set scan may return a member twice (while Redis resizes the set).
            for summary in Self.summaries(values.dropFirst()) where seen.insert(summary.name).inserted { summaries.append(summary) }
        } while cursor != "0" && summaries.count <= configuration.maximumQueues * 2
        return summaries.sorted { $0.name < $1.name }
    }

    private static func summaries(_ values: ArraySlice<RedisValue>) -> [QueueSummary] {
        var summaries: [QueueSummary] = []
        for index in stride(from: values.startIndex, to: values.endIndex, by: 4) {
            guard let name = values[index].string.flatMap({ QueueName($0) }) else { continue }
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

    // MARK: Waiting

    private func prepareToWait(on queue: QueueName, quietSince token: WakeToken?) async {
        state.withLock { $0.lastWaiterSeen[queue] = .now }
        // Subscribed throughout and nothing published since the claim that found the queue empty:
        // the next wake-up finds this waiter registered.
        if let token, wakeToken(for: queue) == token { return }
        do {
            try await subscriber.subscribe(keys(queue).channel)
        } catch {
            logger.warning("cannot subscribe for wake-ups", metadata: ["queue.name": "\(queue)", "error": "\(error)"])
            waiters.resolveAll(on: queue, with: .failed(QueueError.unavailable("\(error)")))
            return
        }
        // Anything sent before the subscription was confirmed is found by this pass.
        kick(queue)
    }

    /// Starts a claim pass for `queue`, or asks the running one to go again.
    private func kick(_ queue: QueueName) {
        let start = state.withLock { state -> Bool in
            if state.passes[queue]?.running == true {
                state.passes[queue]?.rerun = true
                return false
            }
            state.passes[queue] = PassState(running: true, rerun: false)
            return true
        }
        guard start else { return }
        Task(executorPreference: passExecutor) { await self.runPasses(queue) }
    }

    private func runPasses(_ queue: QueueName) async {
        while true {
            await claimPass(queue)
            let again = state.withLock { state -> Bool in
                if state.passes[queue]?.rerun == true {
                    state.passes[queue]?.rerun = false
                    return true
                }
                state.passes[queue] = nil
                return false
            }
            if !again { return }
        }
    }

    /// Claims messages for the local waiters of `queue` and hands them out, oldest message to
    /// oldest waiter. The waiters are reserved while the claim is in flight, so none can time out
    /// or leave with a message claimed for it and nobody to take it (which would hide the head of
    /// the queue from other consumers until it was put back).
    private func claimPass(_ queue: QueueName) async {
        while true {
            let reservations = waiters.reserveOldest(queue, max: Self.maximumClaimBatch)
            guard !reservations.isEmpty else { return }
            let token = wakeToken(for: queue)
            let deliveries: [Delivery]
            do {
                deliveries = try await claim(queue, modes: reservations.map(\.mode))
            } catch {
                logger.warning("claim for waiters failed", metadata: ["queue.name": "\(queue)", "error": "\(error)"])
                waiters.unreserve(reservations)
                waiters.resolveAll(on: queue, with: .failed(error))
                return
            }
            var leftovers: [Delivery] = []
            for (reservation, delivery) in zip(reservations, deliveries) where !waiters.fulfil(reservation, with: delivery) {
                leftovers.append(delivery)
            }
            waiters.unreserve(Array(reservations.dropFirst(deliveries.count)))
            if !leftovers.isEmpty {
                do {
                    try await release(leftovers)
                } catch {
                    logger.error(
                        "could not return unclaimed messages; they come back when their lease expires",
                        metadata: ["queue.name": "\(queue)", "error": "\(error)"]
                    )
                }
                return
            }
            if deliveries.count < reservations.count {
                if let token { noteExhausted(queue, since: token) }
                return
            }
        }
    }

    private func subscriberConnectionChanged(_ connected: Bool) {
        if connected {
            state.withLock { $0.disconnectedSince = nil }
            // Wake-ups published while we were away are lost: look again everywhere.
            for queue in waiters.queuesWithWaiters { kick(queue) }
        } else {
            state.withLock { state in
                if state.disconnectedSince == nil { state.disconnectedSince = .now }
            }
        }
    }

    // MARK: Lifecycle

    /// Ends waits with "no message" and refuses new ones: the first step of a graceful shutdown.
    public func beginShutdown() {
        state.withLock { $0.isShuttingDown = true }
        waiters.resolveAll(with: .timedOut)
    }

    /// Runs the subscriber and the maintenance loops (lease recovery, retention, idle unsubscribes,
    /// failing waiters while Redis is unreachable; due delayed messages every 50 ms) until
    /// graceful shutdown.
    public func run() async throws {
        let subscriber = self.subscriber
        await withTaskGroup(of: Void.self) { group in
            group.addTask { try? await subscriber.run() }
            group.addTask {
                await cancelWhenGracefulShutdown {
                    while !Task.isCancelled {
                        try? await Task.sleep(for: self.configuration.sweepInterval)
                        if Task.isCancelled { break }
                        await self.maintain()
                    }
                }
            }
            group.addTask {
                await cancelWhenGracefulShutdown {
                    while !Task.isCancelled {
                        try? await Task.sleep(for: Self.delayPollInterval)
                        if Task.isCancelled { break }
                        await self.promoteDueMessages()
                    }
                }
            }
            await group.waitForAll()
        }
        beginShutdown()
    }

    /// One round of maintenance; public so tests can drive it without waiting for the timer.
    public func maintain() async {
        await recoverExpiredClaims()
        await removeExpiredMessages()
        let now = ContinuousClock.now
        let (idle, failWaiters) = state.withLock { state -> ([QueueName], Bool) in
            let active = Set(waiters.queuesWithWaiters)
            for queue in active { state.lastWaiterSeen[queue] = now }
            let idle = state.lastWaiterSeen.filter { !active.contains($0.key) && now - $0.value > configuration.idleUnsubscribeAfter }.map(\.key)
            for queue in idle {
                state.lastWaiterSeen[queue] = nil
                state.notifications[queue] = nil
                state.exhaustedAt[queue] = nil
            }
            let failWaiters = state.disconnectedSince.map { now - $0 > .seconds(1) } ?? false
            return (idle, failWaiters)
        }
        for queue in idle {
            await subscriber.unsubscribe(keys(queue).channel)
            // A waiter that arrived meanwhile may have seen the old subscription: subscribe again.
            if waiters.count(on: queue) > 0 { try? await subscriber.subscribe(keys(queue).channel) }
        }
        if failWaiters {
            waiters.resolveAll(with: .failed(QueueError.unavailable("lost the connection to Redis")))
        } else {
            // A safety net for wake-ups lost in a reconnect: cheap, one claim per queue with waiters.
            for queue in waiters.queuesWithWaiters { kick(queue) }
        }
    }

    /// Runs `script` on every queue `index` says is due (at most 100 per round). A queue whose
    /// script fails is logged and skipped, so one bad queue cannot stop the sweep of the others.
    ///
    /// `result` reads a run's answer: how many it handled, and whether that queue has more due now
    /// (then it runs again, up to ``maximumRunsPerQueue`` times a round: each run is kept short so
    /// other clients of Redis are served between them).
    private func sweep(
        _ index: String,
        with script: RedisScript,
        _ arguments: [RedisArgument] = [],
        result: (RedisValue) -> (handled: Int, more: Bool) = { (Int($0.integer ?? 0), false) }
    ) async -> Int {
        let due: RedisValue
        do {
            due = try await run(RedisQueueScripts.dueQueues, on: nil, [.string(index), .integer(100)])
        } catch {
            logger.debug("sweep skipped", metadata: ["redis.script": "\(script.name)", "error": "\(error)"])
            return 0
        }
        var total = 0
        for name in due.array ?? [] {
            guard let raw = name.string, let queue = QueueName(raw) else { continue }
            do {
                var runs = 0
                var more = true
                while more, runs < Self.maximumRunsPerQueue {
                    let answer = result(try await run(script, on: queue, arguments))
                    total += answer.handled
                    more = answer.more
                    runs += 1
                }
            } catch is CancellationError {
                return total
            } catch let error as QueueError where error.kind == .unavailable {
                logger.debug("sweep interrupted", metadata: ["redis.script": "\(script.name)", "error": "\(error)"])
                return total
            } catch {
                logger.error("sweep failed for a queue", metadata: ["queue.name": "\(queue)", "redis.script": "\(script.name)", "error": "\(error)"])
            }
        }
        return total
    }

    /// Runs of one sweep script on one queue in one round, at most.
    static var maximumRunsPerQueue: Int { 1000 }
    /// Claims one recovery run returns at most, and the message bytes it copies at most (about):
    /// a run stays within a few milliseconds of Redis time however much a crashed consumer held.
    static var recoveryClaimsPerRun: Int { 100 }
    static var recoveryBytesPerRun: Int { 256 << 10 }

    /// Expired leases and visibility timeouts are failed receives: their messages go back to the
    /// heads of their queues (or to dead-letter queues). Returns how many.
    @discardableResult
    public func recoverExpiredClaims() async -> Int {
        let recovered = await sweep(
            "lease-index",
            with: RedisQueueScripts.recover,
            [.integer(Int64(Self.recoveryClaimsPerRun)), .integer(Int64(Self.recoveryBytesPerRun))],
            result: Self.handledAndMore
        )
        if recovered > 0 { logger.warning("recovered messages whose lease or visibility timeout expired", metadata: ["message.count": "\(recovered)"]) }
        return recovered
    }

    /// Makes delayed messages whose time has come ready. Returns how many.
    @discardableResult
    public func promoteDueMessages() async -> Int {
        await sweep("delay-index", with: RedisQueueScripts.promoteDue, result: Self.handledAndMore)
    }

    /// Removes messages past their queue's retention period. Returns how many.
    @discardableResult
    public func removeExpiredMessages() async -> Int {
        await sweep("retention-index", with: RedisQueueScripts.expire, [.integer(Int64(Self.expiriesPerRun))], result: Self.handledAndMore)
    }

    /// Messages one retention run removes at most: a queue whose whole backlog expired is emptied
    /// in short runs, not one long one.
    static var expiriesPerRun: Int { 1000 }

    /// Reads `{handled, 1 if more is due now}`, the answer of the bounded sweep scripts.
    private static func handledAndMore(_ answer: RedisValue) -> (handled: Int, more: Bool) {
        let values = answer.array ?? []
        return (Int(values.first?.integer ?? 0), (values.count > 1 ? values[1].integer : 0) == 1)
    }

    // MARK: Helpers

    /// Runs `body` in a task of its own that the caller's cancellation does not reach, on the
    /// caller's event loop when it runs on one (no thread hop).
    private func shielded<T: Sendable>(_ body: @escaping @Sendable () async throws -> T) async throws -> T {
        try await Task(executorPreference: EventLoopTaskExecutor.current) { try await body() }.value
    }

    private func mapErrors<T>(_ body: () async throws -> T) async throws -> T {
        do {
            return try await body()
        } catch let error as RedisClientError {
            if error == .cancelled { throw CancellationError() }
            if error.isConnectivityFailure { throw QueueError.unavailable(error.detail) }
            throw QueueError.internalError(error.detail)
        } catch let error as RedisServerError {
            if error.isOutOfMemory { throw QueueError.insufficientStorage(error.message) }
            if error.isTemporary { throw QueueError.unavailable(error.message) }
            throw QueueError.internalError(error.message)
        }
    }

    /// Parses `2|<seq>|<id>|<enqueuedAtMs>|<priority>|<receiveCount>|<claims>|<first>|<last>|<body>`
    /// into the message and its claim token; the body is a zero-copy slice. `history` is the
    /// dead-letter record `<source>|<receiveCount>|<first>|<last>|<reason>`.
    static func parseEnvelope(_ envelope: ByteBuffer, lastError: String? = nil, history: String? = nil) -> (QueueMessage, claimToken: Int)? {
        let view = envelope.readableBytesView
        var fields: [Substring] = []
        fields.reserveCapacity(9)
        var start = view.startIndex
        var index = view.startIndex
        while fields.count < 9, index < view.endIndex {
            if view[index] == UInt8(ascii: "|") {
                fields.append(Substring(decoding: view[start..<index], as: UTF8.self))
                start = index + 1
            }
            index += 1
        }
        guard fields.count == 9, fields[0] == "2", let enqueuedAt = Int64(fields[3]), let priority = Int(fields[4]),
            let receiveCount = Int(fields[5]), let claims = Int(fields[6])
        else { return nil }
        let bodyOffset = start - view.startIndex
        guard let body = envelope.getSlice(at: envelope.readerIndex + bodyOffset, length: envelope.readableBytes - bodyOffset) else { return nil }
        let message = QueueMessage(
            id: String(fields[2]),
            body: body,
            enqueuedAtMilliseconds: enqueuedAt,
            receiveCount: receiveCount,
            priority: priority,
            lastError: lastError,
            deadLetter: history.flatMap(parseHistory)
        )
        return (message, claims)
    }

    private static func parseHistory(_ record: String) -> DeadLetterHistory? {
        let parts = record.split(separator: "|", maxSplits: 4, omittingEmptySubsequences: false)
        guard parts.count == 5, let source = QueueName(parts[0]), let count = Int(parts[1]), let first = Int64(parts[2]), let last = Int64(parts[3])
        else { return nil }
        return DeadLetterHistory(
            sourceQueue: source,
            receiveCount: count,
            firstReceivedAtMilliseconds: first,
            lastReceivedAtMilliseconds: last,
            lastError: parts[4].isEmpty ? nil : String(parts[4])
        )
    }
}
