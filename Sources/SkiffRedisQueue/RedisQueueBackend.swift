public import Logging
public import NIOCore
public import ServiceLifecycle
public import SkiffQueue
public import SkiffRedis
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
    struct PassState {
        var running = false
        var rerun = false
    }

    struct State {
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
    let waiters: WaiterRegistry
    /// Claim passes run on the waiter registry's event loop, where wake-ups and timers are.
    let passExecutor: EventLoopTaskExecutor
    let logger: Logger
    let state = Mutex(State())
    let subscriberBox = Mutex<RedisSubscriber?>(nil)
    let prefix: String
    /// On a Redis Cluster: the cluster layout of the keys (``RedisQueueKeys``).
    let clustered: Bool
    /// Cluster: slots this process has registered in `<prefix>:slots` (see ``registerSlot(_:)``).
    let registeredSlots = Mutex<Set<Int>>([])
    /// Cluster: the slots that hold queues, as last read, and when.
    let activeSlots = Mutex<(slots: [Int], readAt: ContinuousClock.Instant?)>(([], nil))
    /// Cluster: topic copies this process settled, whose queues' memory of them goes a minute
    /// later (``forgetSettledCopies()``).
    let settledCopies = Mutex(SettledTopicCopies())
    /// Claims per pass; a pass repeats while it fills up and waiters remain.
    static let maximumClaimBatch = 64
    /// How often due delayed messages are looked for: delivery within 100 ms of due.
    static let delayPollInterval = Duration.milliseconds(50)

    /// Concurrent sends, claims and acks on the same queue share one script run (see ``Coalescer``).
    let sendBatches = Mutex<Coalescer<SendMergeKey, ByteBuffer, SentMessage>?>(nil)
    let claimBatches = Mutex<Coalescer<QueueName, ReceiveMode, Delivery>?>(nil)
    let acknowledgeBatches = Mutex<Coalescer<QueueName, Receipt, Bool>?>(nil)

    public init(client: RedisClient, configuration: RedisQueueConfiguration = .init(), eventLoop: any EventLoop, logger: Logger) {
        self.client = client
        self.configuration = configuration
        self.waiters = WaiterRegistry(eventLoop: eventLoop)
        self.passExecutor = EventLoopTaskExecutor.shared(for: eventLoop)
        self.logger = logger
        self.prefix = configuration.keyPrefix
        self.clustered = client.configuration.isCluster
        let (prefix, clustered) = (configuration.keyPrefix, client.configuration.isCluster)
        // Wake-ups arrive on the loop where the claim passes run: no thread hop between them.
        let subscriber = client.makeSubscriber(
            on: eventLoop,
            onMessage: { [weak self] channel, _ in
                guard let self, let queue = RedisQueueKeys.queue(fromChannel: channel, prefix: prefix, clustered: clustered) else { return }
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
    static func split<Item, Output>(
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
    func sendMerged(_ key: SendMergeKey, _ members: [[ByteBuffer]]) async -> [Result<[SentMessage], any Error>] {
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

    static func split<Item, Output>(_ outputs: [Output], as members: [[Item]]) -> [Result<[Output], any Error>] {
        var rest = outputs[...]
        return members.map { items in
            let share = rest.prefix(items.count)
            rest = rest.dropFirst(share.count)
            return .success(Array(share))
        }
    }

    var subscriber: RedisSubscriber { subscriberBox.withLock { $0! } }

    func keys(_ queue: QueueName) -> RedisQueueKeys { RedisQueueKeys(prefix: prefix, queue: queue, clustered: clustered) }

    /// Runs one of the queue scripts on `queue` (every script takes the prefix and the queue
    /// first), or, for the scripts that read a slot's indexes on a cluster, on `slot`.
    func run(_ script: RedisScript, on queue: QueueName?, slot: Int? = nil, _ arguments: [RedisArgument] = []) async throws -> RedisValue {
        var all: [RedisArgument] = [.string(prefix), .string(queue?.rawValue ?? "")]
        all.append(contentsOf: arguments)
        let scriptKeys = try await scriptKeys(queue: queue, slot: slot)
        return try await mapErrors { try await client.evaluate(script, keys: scriptKeys, arguments: all) }
    }

    /// KEYS for a script on `queue` (or `slot`): none on a single Redis; on a cluster the
    /// queue's slot, registered first so that the sweeps and the queue list will look there.
    func scriptKeys(queue: QueueName?, slot: Int? = nil) async throws -> [String] {
        guard clustered else { return [] }
        if let queue {
            let keys = keys(queue)
            try await registerSlot(keys.slot!)
            return keys.scriptKeys
        }
        return slot.map { RedisQueueKeys.slotScriptKeys(prefix: prefix, slot: $0) } ?? []
    }

    /// Cluster: adds `slot` to `<prefix>:slots` before anything is stored in it (once per slot
    /// and process), so no data is ever in a slot the sweeps do not visit.
    func registerSlot(_ slot: Int) async throws {
        guard !registeredSlots.withLock({ $0.contains(slot) }) else { return }
        let set = RedisQueueKeys.slotSet(prefix: prefix)
        _ = try await mapErrors { try await client.send(RedisCommand("SADD", .string(set), .integer(Int64(slot))), slotKey: set) }
        registeredSlots.withLock { _ = $0.insert(slot) }
        // This process sees its own new slot at once; other replicas' within a second.
        activeSlots.withLock { active in
            if !active.slots.contains(slot) { active.slots.append(slot) }
        }
    }

    /// Cluster: the slots that hold queues (read at most once a second, unless `fresh`), together
    /// with every slot this process registered: a registration Redis lost (the shard of
    /// `<prefix>:slots` failed over before replicating it) is written again, and while that set
    /// cannot be read the sweeps go on with what was read last.
    func slotsInUse(fresh: Bool = false) async throws -> [Int] {
        if !fresh, case let (slots, readAt?) = activeSlots.withLock({ $0 }), ContinuousClock.now - readAt < .seconds(1) { return slots }
        let set = RedisQueueKeys.slotSet(prefix: prefix)
        let local = registeredSlots.withLock { $0 }
        let read: Set<Int>
        do {
            let reply = try await mapErrors { try await client.send(RedisCommand("SMEMBERS", .string(set)), slotKey: set) }
            read = Set((reply.array ?? []).compactMap { $0.integer.map(Int.init) }.filter { (0..<ClusterSlot.count).contains($0) })
        } catch {
            let last = activeSlots.withLock { $0.slots }
            guard !last.isEmpty || !local.isEmpty else { throw error }
            return Array(Set(last).union(local)).sorted()
        }
        let missing = local.subtracting(read)
        if !missing.isEmpty {
            _ = try? await client.send(RedisCommand("SADD", [.string(set)] + missing.sorted().map { .integer(Int64($0)) }), slotKey: set)
        }
        let slots = Array(read.union(local)).sorted()
        activeSlots.withLock { $0 = (slots, .now) }
        return slots
    }

    /// Cluster: counts a queue that is about to be created against `MAX_QUEUES` in the global
    /// registry (a queue's scripts run in its slot and cannot count the others).
    func admit(_ queue: QueueName) async throws {
        let registry = RedisQueueKeys.queueRegistry(prefix: prefix)
        let reply = try await mapErrors {
            try await client.evaluate(
                RedisQueueScripts.register,
                keys: [registry],
                arguments: [.string(queue.rawValue), .integer(Int64(configuration.maximumQueues))]
            )
        }
        guard reply.integer == 1 else { throw QueueError.tooManyQueues(queue, maximum: configuration.maximumQueues) }
    }

    /// Cluster: a deleted queue leaves the global registry.
    func unregister(_ queue: QueueName) async throws {
        guard clustered else { return }
        let registry = RedisQueueKeys.queueRegistry(prefix: prefix)
        _ = try await mapErrors { try await client.send(RedisCommand("SREM", .string(registry), .string(queue.rawValue)), slotKey: registry) }
    }

    // MARK: Sending

    public func send(_ bodies: [ByteBuffer], to queue: QueueName, options: SendOptions) async throws -> [SentMessage] {
        guard !bodies.isEmpty else { return [] }
        try options.validate(bodies: bodies.count)
        // A send with an idempotency key answers for its own key, one with ids for its own ids,
        // one with a trace context carries its own: never merged.
        guard options.idempotencyKey == nil, options.messageIDs == nil, options.traceContext == nil, let batches = sendBatches.withLock({ $0 }) else {
            return try await store(bodies, to: queue, options: options)
        }
        let key = SendMergeKey(queue: queue, delayMilliseconds: options.delay.map { max(0, $0.milliseconds) }, priority: options.priority)
        return try await batches.submit(bodies, for: key)
    }

    /// The `maximum` a script that may create a queue is given: `MAX_QUEUES` on a single Redis;
    /// on a cluster 0 (existing queues only: a new one is admitted in the global registry, and
    /// the script runs again without a limit).
    var maximumQueuesArgument: Int64 { clustered ? 0 : Int64(configuration.maximumQueues) }

    /// One `enqueue` (or `publish`) run, waiting for Redis replicas when configured.
    func enqueue(_ arguments: [RedisArgument], keys scriptKeys: [String], script: RedisScript = RedisQueueScripts.enqueue) async throws -> RedisValue {
        guard configuration.replicaAcknowledgements > 0 else {
            return try await mapErrors { try await client.evaluate(script, keys: scriptKeys, arguments: arguments) }
        }
        let (value, acknowledged) = try await mapErrors {
            try await client.evaluate(
                script,
                keys: scriptKeys,
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
        return value
    }

    /// Stores `bodies` with one `enqueue` script run.
    func store(_ bodies: [ByteBuffer], to queue: QueueName, options: SendOptions) async throws -> [SentMessage] {
        let scriptKeys = try await scriptKeys(queue: queue)
        let ids = options.messageIDs ?? bodies.map { _ in MessageID.make() }
        func arguments(maximumQueues: Int64) -> [RedisArgument] {
            var arguments: [RedisArgument] = [.string(prefix), .string(queue.rawValue)]
            arguments.reserveCapacity(8 + 2 * bodies.count)
            arguments.append(options.delay.map { .integer(max(0, $0.milliseconds)) } ?? .string(""))
            arguments.append(.integer(Int64(options.priority)))
            arguments.append(.string(options.idempotencyKey ?? ""))
            arguments.append(.integer(maximumQueues))
            arguments.append(.integer(Int64(bodies.count)))
            for id in ids { arguments.append(.string(id)) }
            for body in bodies { arguments.append(.bytes(body)) }
            arguments.append(.string(options.traceContext?.stored ?? ""))
            return arguments
        }
        var reply = try await enqueue(arguments(maximumQueues: maximumQueuesArgument), keys: scriptKeys)
        if clustered, reply.array?.first?.integer == -3 {
            // A new queue on a cluster: counted in the global registry first, then created.
            try await admit(queue)
            reply = try await enqueue(arguments(maximumQueues: .max), keys: scriptKeys)
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
            throw QueueError.tooManyQueues(queue, maximum: configuration.maximumQueues)
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
        let token = wakeToken(for: queue)
        // A claim that ran in Redis must reach a consumer or go back (see `receive`).
        let claimed = try await shielded {
            try await self.claim(queue, modes: Array(repeating: mode, count: max), byteLimit: Swift.max(1, maxBytes))
        }
        // Fewer than asked, and not for the byte limit: the claim emptied the queue.
        if claimed.deliveries.count < max, !claimed.stoppedAtByteLimit, let token { noteExhausted(queue, since: token) }
        if Task.isCancelled, !claimed.deliveries.isEmpty {
            try await shielded { try await self.release(claimed.deliveries) }
            throw CancellationError()
        }
        return claimed
    }

    public func isKnownEmpty(_ queue: QueueName) -> Bool {
        guard let token = wakeToken(for: queue) else { return false }
        return state.withLock { $0.exhaustedAt[queue] == token }
    }

    /// Records that a claim started under `token` got fewer messages than it asked for.
    func noteExhausted(_ queue: QueueName, since token: WakeToken) {
        state.withLock { $0.exhaustedAt[queue] = token }
    }

    /// A wait that a claim under the current wake token found the queue empty for (the batch
    /// path's claim, or an earlier consumer's) registers without a claim pass of its own.
    public func wait(for queue: QueueName, timeout: Duration, mode: ReceiveMode) async throws -> [Delivery] {
        let token = wakeToken(for: queue)
        let quiet = token.flatMap { token in state.withLock { $0.exhaustedAt[queue] == token } ? token : nil }
        return try await wait(for: queue, timeout: timeout, mode: mode, quietSince: quiet)
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

    func acknowledgeNow(_ receipts: [Receipt], in queue: QueueName) async throws -> [Bool] {
        try await perReceipt(RedisQueueScripts.acknowledge, receipts, in: queue)
    }

    /// Runs a script that takes id and token pairs and answers 1 or 0 for each.
    private func perReceipt(_ script: RedisScript, _ receipts: [Receipt], in queue: QueueName) async throws -> [Bool] {
        var arguments: [RedisArgument] = []
        arguments.reserveCapacity(2 * receipts.count)
        for receipt in receipts {
            arguments.append(.string(receipt.messageID))
            arguments.append(.integer(Int64(receipt.claimToken)))
        }
        let reply = try await run(script, on: queue, arguments)
        guard let results = reply.array, results.count == receipts.count else {
            throw QueueError.internalError("\(script.name) script returned \(reply)")
        }
        return results.map { $0.integer == 1 }
    }

    public func claimsHeld(_ receipts: [Receipt], in queue: QueueName) async throws -> [Bool] {
        guard !receipts.isEmpty else { return [] }
        return try await perReceipt(RedisQueueScripts.held, receipts, in: queue)
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
                let (message, claimToken) = RedisEnvelope.parse(envelope)?.message(lastError: values[index + 1].string, history: values[index + 2].string)
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

    /// One `release` script per queue for all of its claims (every key of a script is of one
    /// queue); a failure of one queue's leaves the others tried, and is thrown after them.
    public func release(_ deliveries: [Delivery]) async throws {
        var queues: [QueueName] = []
        var arguments: [QueueName: [RedisArgument]] = [:]
        for delivery in deliveries {
            if arguments[delivery.queue] == nil { queues.append(delivery.queue) }
            arguments[delivery.queue, default: []] += [.string(delivery.message.id), .integer(Int64(delivery.claimToken))]
        }
        var failure: (any Error)?
        for queue in queues {
            do {
                _ = try await run(RedisQueueScripts.release, on: queue, arguments[queue] ?? [])
            } catch {
                failure = failure ?? error
            }
        }
        if let failure { throw failure }
    }

    // MARK: Helpers

    /// Runs `body` in a task of its own that the caller's cancellation does not reach, on the
    /// caller's event loop when it runs on one (no thread hop).
    func shielded<T: Sendable>(_ body: @escaping @Sendable () async throws -> T) async throws -> T {
        try await Task(executorPreference: EventLoopTaskExecutor.current) { try await body() }.value
    }

    func mapErrors<T>(_ body: () async throws -> T) async throws -> T {
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
}
