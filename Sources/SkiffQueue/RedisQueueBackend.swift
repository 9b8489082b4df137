import Logging
import NIOCore
import ServiceLifecycle
import SkiffRedis
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

    public init(
        keyPrefix: String = "skiff",
        claimLease: Duration = .seconds(30),
        sweepInterval: Duration = .seconds(1),
        idleUnsubscribeAfter: Duration = .seconds(30),
        replicaAcknowledgements: Int = 0,
        replicaTimeout: Duration = .milliseconds(100)
    ) {
        self.keyPrefix = keyPrefix
        self.claimLease = claimLease
        self.sweepInterval = min(sweepInterval, claimLease / 4)
        self.idleUnsubscribeAfter = idleUnsubscribeAfter
        self.replicaAcknowledgements = replicaAcknowledgements
        self.replicaTimeout = replicaTimeout
    }
}

/// Queues in Redis, shared by any number of replicas.
///
/// - Send: one script appends the message and publishes a wake-up on the queue's channel.
/// - Receive: one script pops from the head and leases the message (in-flight hash + lease
///   sorted set, Redis clock). Consumers that must wait register locally; one subscriber
///   connection per replica listens on the channels of queues that have waiters, and a wake-up
///   runs a claim pass that hands messages to the oldest local waiters. Waiting costs no Redis
///   connection and no polling.
/// - Complete deletes the claim once the response was handed to the client; release puts it back
///   at the head; a sweep on every replica returns expired claims (from dead replicas) to the head.
public final class RedisQueueBackend: QueueBackend, Service {
    private struct PassState {
        var running = false
        var rerun = false
    }

    private struct State {
        var passes: [QueueName: PassState] = [:]
        var lastWaiterSeen: [QueueName: ContinuousClock.Instant] = [:]
        var isShuttingDown = false
        var disconnectedSince: ContinuousClock.Instant?
    }

    public let client: RedisClient
    public let configuration: RedisQueueConfiguration
    private let waiters: WaiterRegistry
    private let logger: Logger
    private let state = Mutex(State())
    private let subscriberBox = Mutex<RedisSubscriber?>(nil)
    private let queueSetKey: String
    private let leaseIndexKey: String
    /// Claims per pass; a pass repeats while it fills up and waiters remain.
    private static let maximumClaimBatch = 64

    public init(client: RedisClient, configuration: RedisQueueConfiguration = .init(), eventLoop: any EventLoop, logger: Logger) {
        self.client = client
        self.configuration = configuration
        self.waiters = WaiterRegistry(eventLoop: eventLoop)
        self.logger = logger
        self.queueSetKey = RedisQueueKeys.queueSet(prefix: configuration.keyPrefix)
        self.leaseIndexKey = RedisQueueKeys.leaseIndex(prefix: configuration.keyPrefix)
        let prefix = configuration.keyPrefix
        let subscriber = client.makeSubscriber(
            onMessage: { [weak self] channel, _ in
                guard let self, let queue = RedisQueueKeys.queue(fromChannel: channel, prefix: prefix) else { return }
                self.kick(queue)
            },
            onConnectionChange: { [weak self] connected in self?.subscriberConnectionChanged(connected) }
        )
        subscriberBox.withLock { $0 = subscriber }
    }

    private var subscriber: RedisSubscriber { subscriberBox.withLock { $0! } }

    private func keys(_ queue: QueueName) -> RedisQueueKeys { RedisQueueKeys(prefix: configuration.keyPrefix, queue: queue) }

    // MARK: QueueBackend

    public func send(_ body: ByteBuffer, to queue: QueueName) async throws -> SentMessage {
        let keys = keys(queue)
        let id = MessageID.make()
        let scriptKeys = [keys.ready, keys.sequence, queueSetKey]
        let arguments: [RedisArgument] = [.string(id), .bytes(body), .string(keys.channel), .string(queue.rawValue)]
        let reply: RedisValue
        if configuration.replicaAcknowledgements > 0 {
            let (value, acknowledged) = try await mapErrors {
                try await client.evaluate(
                    RedisQueueScripts.enqueue,
                    keys: scriptKeys,
                    arguments: arguments,
                    waitingForReplicas: configuration.replicaAcknowledgements,
                    timeout: configuration.replicaTimeout
                )
            }
            guard acknowledged >= configuration.replicaAcknowledgements else {
                throw QueueError.unavailable(
                    "the message reached the primary but only \(acknowledged) of \(configuration.replicaAcknowledgements) replicas confirmed it in time; it may or may not be delivered"
                )
            }
            reply = value
        } else {
            reply = try await mapErrors { try await client.evaluate(RedisQueueScripts.enqueue, keys: scriptKeys, arguments: arguments) }
        }
        guard let enqueuedAt = reply.integer else { throw QueueError.internalError("enqueue script returned \(reply)") }
        return SentMessage(id: id, queue: queue, enqueuedAtMilliseconds: enqueuedAt)
    }

    public func receive(from queue: QueueName, timeout: Duration) async throws -> Delivery? {
        // A claim that ran in Redis must reach a consumer or go back; cancelling the command
        // mid-flight would strand the message until its lease expires. So the claim finishes,
        // and a caller that was cancelled meanwhile gives the message back at once.
        if let delivery = try await shielded({ try await self.claim(queue, count: 1) }).first {
            if Task.isCancelled {
                try await shielded { try await self.release([delivery]) }
                throw CancellationError()
            }
            return delivery
        }
        if timeout <= .zero || state.withLock({ $0.isShuttingDown }) { return nil }
        let outcome = await waiters.wait(on: queue, timeout: timeout) {
            Task { await self.prepareToWait(on: queue) }
        }
        return try await outcome.delivery { delivery in try await self.shielded { try await self.release([delivery]) } }
    }

    @discardableResult
    public func complete(_ delivery: Delivery) async throws -> Bool {
        let keys = keys(delivery.queue)
        // The response is already with the client: keep trying (through a Redis restart, say)
        // until the lease ends, after which a sweep may hand the message out again.
        let giveUpAt = delivery.claimedAt + delivery.lease
        var attempt = 0
        while true {
            do {
                let reply = try await mapErrors {
                    try await client.evaluate(
                        RedisQueueScripts.complete,
                        keys: [keys.inFlight, keys.leases],
                        arguments: [.string(delivery.message.id), .integer(Int64(delivery.claimToken))]
                    )
                }
                let completed = reply.integer == 1
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

    // MARK: Claims

    /// Claims up to `count` messages from the head of `queue`.
    func claim(_ queue: QueueName, count: Int) async throws -> [Delivery] {
        let keys = keys(queue)
        let claimedAt = ContinuousClock.now
        let reply = try await mapErrors {
            try await client.evaluate(
                RedisQueueScripts.claim,
                keys: [keys.ready, keys.inFlight, keys.leases, leaseIndexKey],
                arguments: [.integer(Int64(count)), .integer(configuration.claimLease.milliseconds), .string(queue.rawValue)]
            )
        }
        guard let envelopes = reply.array else { throw QueueError.internalError("claim script returned \(reply)") }
        return try envelopes.map { value in
            guard let envelope = value.bytes, let (message, claimToken) = Self.parseEnvelope(envelope) else {
                throw QueueError.internalError("malformed message envelope in \(keys.ready)")
            }
            return Delivery(queue: queue, message: message, claimToken: claimToken, claimedAt: claimedAt, lease: configuration.claimLease)
        }
    }

    public func confirm(_ delivery: Delivery) async throws -> Bool {
        guard delivery.needsFenceCheck else { return true }
        let keys = keys(delivery.queue)
        let reply = try await mapErrors {
            try await client.evaluate(
                RedisQueueScripts.renew,
                keys: [keys.inFlight, keys.leases, leaseIndexKey],
                arguments: [
                    .string(delivery.message.id), .integer(Int64(delivery.claimToken)),
                    .integer(configuration.claimLease.milliseconds), .string(delivery.queue.rawValue),
                ]
            )
        }
        return reply.integer == 1
    }

    private func release(_ deliveries: [Delivery]) async throws {
        guard let queue = deliveries.first?.queue else { return }
        let keys = keys(queue)
        var arguments: [RedisArgument] = [.string(keys.channel)]
        for delivery in deliveries {
            arguments.append(.string(delivery.message.id))
            arguments.append(.integer(Int64(delivery.claimToken)))
        }
        _ = try await mapErrors {
            try await client.evaluate(RedisQueueScripts.release, keys: [keys.ready, keys.inFlight, keys.leases], arguments: arguments)
        }
    }

    // MARK: Waiting

    private func prepareToWait(on queue: QueueName) async {
        state.withLock { $0.lastWaiterSeen[queue] = .now }
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
        Task { await self.runPasses(queue) }
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
            let deliveries: [Delivery]
            do {
                deliveries = try await claim(queue, count: reservations.count)
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
            if deliveries.count < reservations.count { return }
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

    /// Runs the subscriber and the maintenance loop (lease recovery, idle unsubscribes, failing
    /// waiters while Redis is unreachable) until graceful shutdown.
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
            await group.waitForAll()
        }
        beginShutdown()
    }

    /// One round of maintenance; public so tests can drive it without waiting for the timer.
    public func maintain() async {
        await recoverExpiredClaims()
        let now = ContinuousClock.now
        let (idle, failWaiters) = state.withLock { state -> ([QueueName], Bool) in
            let active = Set(waiters.queuesWithWaiters)
            for queue in active { state.lastWaiterSeen[queue] = now }
            let idle = state.lastWaiterSeen.filter { !active.contains($0.key) && now - $0.value > configuration.idleUnsubscribeAfter }.map(\.key)
            for queue in idle { state.lastWaiterSeen[queue] = nil }
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

    /// Returns the claims of dead (or stalled) replicas to the heads of their queues.
    @discardableResult
    public func recoverExpiredClaims() async -> Int {
        var recovered = 0
        do {
            let due = try await client.evaluate(RedisQueueScripts.dueQueues, keys: [leaseIndexKey], arguments: [.integer(100)])
            for name in due.array ?? [] {
                guard let raw = name.string, let queue = QueueName(raw) else { continue }
                let keys = keys(queue)
                let count = try await client.evaluate(
                    RedisQueueScripts.recover,
                    keys: [keys.ready, keys.inFlight, keys.leases, leaseIndexKey],
                    arguments: [.string(queue.rawValue), .integer(1000), .string(keys.channel)]
                )
                let n = Int(count.integer ?? 0)
                if n > 0 {
                    logger.warning("recovered messages whose claim lease expired", metadata: ["queue.name": "\(queue)", "message.count": "\(n)"])
                }
                recovered += n
            }
        } catch {
            logger.debug("lease recovery skipped", metadata: ["error": "\(error)"])
        }
        return recovered
    }

    // MARK: Helpers

    /// Runs `body` to completion even when the calling task is cancelled.
    private func shielded<T: Sendable>(_ body: @escaping @Sendable () async throws -> T) async throws -> T {
        try await Task { try await body() }.value
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

    /// Parses `1|<seq>|<id>|<enqueuedAtMs>|<receiveCount>|<claims>|<body>` into the message and its
    /// claim token; the body is a zero-copy slice.
    static func parseEnvelope(_ envelope: ByteBuffer) -> (QueueMessage, claimToken: Int)? {
        let view = envelope.readableBytesView
        var fields: [Substring] = []
        var start = view.startIndex
        var index = view.startIndex
        while fields.count < 6, index < view.endIndex {
            if view[index] == UInt8(ascii: "|") {
                fields.append(Substring(decoding: view[start..<index], as: UTF8.self))
                start = index + 1
            }
            index += 1
        }
        guard fields.count == 6, fields[0] == "1", let enqueuedAt = Int64(fields[3]), let receiveCount = Int(fields[4]),
            let claims = Int(fields[5])
        else { return nil }
        let bodyOffset = start - view.startIndex
        guard let body = envelope.getSlice(at: envelope.readerIndex + bodyOffset, length: envelope.readableBytes - bodyOffset) else { return nil }
        return (QueueMessage(id: String(fields[2]), body: body, enqueuedAtMilliseconds: enqueuedAt, receiveCount: receiveCount), claims)
    }
}
