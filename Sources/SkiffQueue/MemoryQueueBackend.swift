import Logging
import NIOCore
import ServiceLifecycle
import SkiffRedis
import Synchronization

/// Queues in this process's memory: the self-contained default when no Redis is configured.
///
/// Same contract as ``RedisQueueBackend`` (docs/message-lifecycle.md), for one replica. Messages do
/// not survive a restart. Every state change happens under one lock, so each is atomic.
///
/// Two clocks: message times (enqueue, retention, delays, receive times, stats buckets) are Unix
/// milliseconds from `wallClock`, as Redis `TIME` is for the Redis backend; leases and visibility
/// timeouts run on `ContinuousClock`, like ``Delivery/claimedAt``.
public final class MemoryQueueBackend: ClaimingBackend, Service {
    private let state = Mutex(State())
    private let waiters: WaiterRegistry
    private let claimLease: Duration
    /// Queues this backend may hold (`MAX_QUEUES`); creating one more is refused.
    private let maximumQueues: Int
    private let maintenanceInterval: Duration
    private let wallClock: @Sendable () -> Int64
    private let logger: Logger

    /// - Parameters:
    ///   - claimLease: how long a message claimed in auto-acknowledge mode may stay unsettled before
    ///     it returns to its queue.
    ///   - maintenanceInterval: how often ``run()`` calls ``maintain()``: delayed messages become
    ///     ready within this (the contract promises 100 ms), expired leases return within it.
    ///   - wallClock: Unix milliseconds; tests inject one they can move forward to age messages.
    public init(
        eventLoop: any EventLoop,
        claimLease: Duration = .seconds(30),
        maintenanceInterval: Duration = .milliseconds(25),
        wallClock: @escaping @Sendable () -> Int64 = { MessageID.currentMilliseconds() },
        maximumQueues: Int = QueueSettings.defaultMaximumQueues,
        logger: Logger = Logger(label: "skiff.memory")
    ) {
        self.waiters = WaiterRegistry(eventLoop: eventLoop)
        self.maximumQueues = maximumQueues
        self.claimLease = claimLease
        self.maintenanceInterval = maintenanceInterval
        self.wallClock = wallClock
        self.logger = logger
    }

    // MARK: Send

    public func send(_ bodies: [ByteBuffer], to queue: QueueName, options: SendOptions) async throws -> [SentMessage] {
        try options.validate()
        let now = wallClock()
        let (sent, madeReady) = try state.withLock { state throws(QueueError) -> ([SentMessage], Bool) in
            // Read through the dictionary, never into a local copy: a copy alive during the
            // mutation below would make it copy every buffer of the queue.
            let settings = state.queues[queue]?.effectiveSettings ?? QueueSettings()
            if let key = options.idempotencyKey, let original = state.queues[queue]?.idempotencyKeys[key],
                now - original.sentAtMilliseconds < settings.dedupWindowMilliseconds
            {
                return (
                    original.messages.map {
                        SentMessage(id: $0.id, queue: $0.queue, enqueuedAtMilliseconds: $0.enqueuedAtMilliseconds, isDuplicate: true)
                    }, false
                )
            }
            let delay = max(0, options.delay?.milliseconds ?? settings.delayMilliseconds)
            guard delay <= settings.retentionMilliseconds else {
                throw QueueError.invalidArgument(
                    "a delay of \(delay) ms is beyond the queue's retention period of \(settings.retentionMilliseconds) ms"
                )
            }
            if let maxDepth = settings.maxDepth, (state.queues[queue]?.depth ?? 0) + bodies.count > maxDepth {
                throw QueueError.queueFull(queue, maxDepth: maxDepth)
            }
            try checkQueueLimit(queue, in: state)
            guard !bodies.isEmpty else { return ([], false) }
            var sent: [SentMessage] = []
            sent.reserveCapacity(bodies.count)
            state.queues[queue, default: QueueState()].modify { queueState in
                for body in bodies {
                    queueState.sequence += 1
                    let message = StoredMessage(
                        sequence: queueState.sequence,
                        id: MessageID.make(nowMilliseconds: now),
                        body: body,
                        enqueuedAtMilliseconds: now,
                        priority: options.priority
                    )
                    if delay > 0 {
                        queueState.delayed.push(DelayedMessage(dueAtMilliseconds: now + delay, message: message, isReturning: false))
                    } else {
                        queueState.ready[message.priority].append(message)
                    }
                    sent.append(SentMessage(id: message.id, queue: queue, enqueuedAtMilliseconds: now))
                }
                queueState.counters.record(\.enqueued, Int64(bodies.count), at: now)
                if let key = options.idempotencyKey {
                    queueState.idempotencyKeys[key] = StoredIdempotencyKey(sentAtMilliseconds: now, messages: sent)
                    queueState.idempotencyKeyOrder.append((now, key))
                }
            }
            return (sent, delay == 0)
        }
        if madeReady { dispatch(queue) }
        return sent
    }

    // MARK: Receive

    public func receive(from queue: QueueName, max: Int, timeout: Duration, mode: ReceiveMode) async throws -> [Delivery] {
        let lease = self.lease(of: mode, in: queue)
        let claimed = claim(queue, max: Swift.max(1, max), maxBytes: nil, lease: lease).deliveries
        if !claimed.isEmpty { return claimed }
        return try await wait(for: queue, timeout: timeout, mode: mode)
    }

    public func claimReady(from queue: QueueName, max: Int, maxBytes: Int?, mode: ReceiveMode) async throws -> ClaimedMessages {
        claim(queue, max: Swift.max(1, max), maxBytes: maxBytes, lease: lease(of: mode, in: queue))
    }

    public func wait(for queue: QueueName, timeout: Duration, mode: ReceiveMode) async throws -> [Delivery] {
        let deadline = ContinuousClock.now + timeout
        while true {
            let remaining = deadline - ContinuousClock.now
            if remaining <= .zero || state.withLock({ $0.isShuttingDown }) { return [] }
            // Waiters are served in auto-acknowledge mode (the registry knows no modes); an
            // acknowledged receive turns its claim into a visibility lease right after.
            let outcome = await waiters.wait(on: queue, timeout: remaining) { self.dispatch(queue) }
            guard let delivery = try await outcome.delivery(releasingIfCancelled: { try await self.release($0) }) else { return [] }
            guard case .acknowledge = mode else { return [delivery] }
            if let retargeted = retarget(delivery, lease: self.lease(of: mode, in: queue).duration) { return [retargeted] }
            // The claim was lost in between (the queue was purged or deleted): wait on.
        }
    }

    private func lease(of mode: ReceiveMode, in queue: QueueName) -> (duration: Duration, isAcknowledgedMode: Bool) {
        switch mode {
        case .autoAcknowledge:
            return (claimLease, false)
        case .acknowledge(let visibilityTimeout):
            if let visibilityTimeout { return (visibilityTimeout, true) }
            let milliseconds =
                state.withLock { $0.queues[queue]?.settings?.visibilityTimeoutMilliseconds } ?? QueueSettings().visibilityTimeoutMilliseconds
            return (.milliseconds(milliseconds), true)
        }
    }

    /// Claims up to `max` messages from the head of `queue`, and past the first none that would
    /// take the bodies' bytes beyond `maxBytes`.
    private func claim(_ queue: QueueName, max: Int, maxBytes: Int?, lease: (duration: Duration, isAcknowledgedMode: Bool)) -> ClaimedMessages {
        let claimedAt = ContinuousClock.now
        let now = wallClock()
        let (claimed, wakes) = state.withLock { state -> (ClaimedMessages, Set<QueueName>) in
            var wakes = Set<QueueName>()
            let claimed = Self.claim(
                queue,
                max: max,
                maxBytes: maxBytes,
                in: &state,
                now: now,
                claimedAt: claimedAt,
                lease: lease.duration,
                isAcknowledgedMode: lease.isAcknowledgedMode,
                wakes: &wakes
            )
            return (claimed, wakes)
        }
        for queue in wakes { dispatch(queue) }
        return claimed
    }

    /// Turns a claim handed to a waiter into an acknowledged-mode claim with `lease`.
    private func retarget(_ delivery: Delivery, lease: Duration) -> Delivery? {
        let claimedAt = ContinuousClock.now
        let held = state.withLock { state -> Bool in
            guard state.queues[delivery.queue]?.holds(delivery.message.id, claimToken: delivery.claimToken, at: claimedAt) == true else {
                return false
            }
            state.queues[delivery.queue]!.setLease(of: delivery.message.id, to: claimedAt + lease, isAcknowledgedMode: true)
            return true
        }
        guard held else { return nil }
        return Delivery(
            queue: delivery.queue,
            message: delivery.message,
            claimToken: delivery.claimToken,
            claimedAt: claimedAt,
            lease: lease,
            isAcknowledgedMode: true
        )
    }

    // MARK: Settle

    @discardableResult
    public func complete(_ delivery: Delivery) async throws -> Bool {
        let settled = settle(Receipt(messageID: delivery.message.id, claimToken: delivery.claimToken), in: delivery.queue)
        if !settled {
            logger.error(
                "claim was recovered before completion; the message may be delivered twice",
                metadata: ["queue.name": "\(delivery.queue)", "message.id": "\(delivery.message.id)"]
            )
        }
        return settled
    }

    public func acknowledge(_ receipts: [Receipt], in queue: QueueName) async throws -> [Bool] {
        receipts.map { settle($0, in: queue) }
    }

    /// Deletes the message if `receipt` still holds its claim.
    private func settle(_ receipt: Receipt, in queue: QueueName) -> Bool {
        let now = ContinuousClock.now
        let wall = wallClock()
        return state.withLock { state in
            guard state.queues[queue]?.holds(receipt.messageID, claimToken: receipt.claimToken, at: now) == true else { return false }
            state.queues[queue]!.modify { queueState in
                queueState.inFlight[receipt.messageID] = nil
                queueState.counters.record(\.acknowledged, 1, at: wall)
            }
            return true
        }
    }

    public func release(_ delivery: Delivery) async throws {
        let now = ContinuousClock.now
        let wall = wallClock()
        let released = state.withLock { state -> Bool in
            guard state.queues[delivery.queue]?.holds(delivery.message.id, claimToken: delivery.claimToken, at: now) == true else { return false }
            state.queues[delivery.queue]!.modify { queueState in
                guard var message = queueState.inFlight.removeValue(forKey: delivery.message.id)?.message else { return }
                // It never reached a consumer: this receive does not count.
                message.receiveCount = Swift.max(0, message.receiveCount - 1)
                queueState.counters.takeBackDelivery(countedAt: message.lastReceivedAtMilliseconds ?? wall)
                queueState.requeueAtHead(message)
            }
            return true
        }
        if released { dispatch(delivery.queue) }
    }

    public func confirm(_ delivery: Delivery) async throws -> Bool {
        guard delivery.needsFenceCheck else { return true }
        let now = ContinuousClock.now
        return state.withLock { state in
            guard state.queues[delivery.queue]?.holds(delivery.message.id, claimToken: delivery.claimToken, at: now) == true else { return false }
            state.queues[delivery.queue]!.setLease(of: delivery.message.id, to: now + delivery.lease, isAcknowledgedMode: delivery.isAcknowledgedMode)
            return true
        }
    }

    public func reject(_ receipt: Receipt, in queue: QueueName, delay: Duration?, reason: String?) async throws -> Bool {
        let retry: RetryDelay = delay.map { .fixed(milliseconds: Swift.max(0, $0.milliseconds)) } ?? .backoff
        return failReceive(receipt, in: queue, retry: retry, reason: reason)
    }

    public func changeVisibility(_ receipt: Receipt, in queue: QueueName, timeout: Duration) async throws -> Bool {
        guard timeout > .zero else { return failReceive(receipt, in: queue, retry: .fixed(milliseconds: 0), reason: nil) }
        let now = ContinuousClock.now
        return state.withLock { state in
            guard state.queues[queue]?.holds(receipt.messageID, claimToken: receipt.claimToken, at: now) == true else { return false }
            let isAcknowledgedMode = state.queues[queue]!.inFlight[receipt.messageID]!.isAcknowledgedMode
            state.queues[queue]!.setLease(of: receipt.messageID, to: now + timeout, isAcknowledgedMode: isAcknowledgedMode)
            return true
        }
    }

    /// A nack or a visibility change to zero: the failed-receive rule, if `receipt` holds its claim.
    private func failReceive(_ receipt: Receipt, in queue: QueueName, retry: RetryDelay, reason: String?) -> Bool {
        let now = ContinuousClock.now
        let wall = wallClock()
        let (held, wakes) = state.withLock { state -> (Bool, Set<QueueName>) in
            var wakes = Set<QueueName>()
            guard state.queues[queue]?.holds(receipt.messageID, claimToken: receipt.claimToken, at: now) == true,
                let claim = state.queues[queue]!.inFlight.removeValue(forKey: receipt.messageID)
            else { return (false, wakes) }
            Self.failedReceive(claim.message, of: queue, retry: retry, reason: reason, in: &state, now: wall, wakes: &wakes)
            return (true, wakes)
        }
        for queue in wakes { dispatch(queue) }
        return held
    }

    // MARK: Settings, dead letters, figures

    public func settings(of queue: QueueName) async throws -> QueueSettings {
        state.withLock { $0.queues[queue]?.settings } ?? QueueSettings()
    }

    public func updateSettings(_ settings: QueueSettings, of queue: QueueName) async throws {
        try state.withLock { state throws(QueueError) in
            try checkQueueLimit(queue, in: state)
            state.queues[queue, default: QueueState()].settings = settings
        }
    }

    public func redrive(into queue: QueueName, max: Int) async throws -> Int {
        guard max > 0 else { return 0 }
        let now = wallClock()
        let moved = try state.withLock { state throws(QueueError) -> Int in
            let deadLetterQueue = (state.queues[queue]?.settings ?? QueueSettings()).deadLetterQueue(of: queue)
            guard let source = state.queues[deadLetterQueue], source.readyCount > 0 else { return 0 }
            try checkQueueLimit(queue, in: state)
            var moving: [StoredMessage] = []
            state.queues[deadLetterQueue]!.modify { source in
                let retention = source.effectiveSettings.retentionMilliseconds
                while moving.count < max, let message = source.popHead() {
                    if now - message.enqueuedAtMilliseconds >= retention {
                        source.counters.record(\.expired, 1, at: now)
                    } else {
                        moving.append(message)
                    }
                }
            }
            guard !moving.isEmpty else { return 0 }
            state.queues[queue, default: QueueState()].modify { target in
                for var message in moving {
                    target.sequence += 1
                    message.sequence = target.sequence
                    message.enqueuedAtMilliseconds = now
                    message.receiveCount = 0
                    message.firstReceivedAtMilliseconds = nil
                    message.lastReceivedAtMilliseconds = nil
                    message.lastError = nil
                    message.deadLetter = nil
                    target.ready[message.priority].append(message)
                }
                // As a dead-lettering counts `enqueued` in the dead-letter queue.
                target.counters.record(\.enqueued, Int64(moving.count), at: now)
            }
            return moving.count
        }
        if moved > 0 { dispatch(queue) }
        return moved
    }

    public func stats(of queue: QueueName) async throws -> QueueStats {
        let now = wallClock()
        return state.withLock { state in
            var stats = QueueStats()
            guard let queueState = state.queues[queue] else {
                stats.deadLetterReady = state.queues[QueueSettings().deadLetterQueue(of: queue)]?.readyCount ?? 0
                return stats
            }
            stats.ready = queueState.readyCount
            stats.inFlight = queueState.inFlight.count
            stats.delayed = queueState.delayed.count
            stats.deadLetterReady = state.queues[queueState.effectiveSettings.deadLetterQueue(of: queue)]?.readyCount ?? 0
            stats.oldestReadyAgeMilliseconds = queueState.ready.compactMap { $0.first?.enqueuedAtMilliseconds }.min().map { Swift.max(0, now - $0) }
            stats.totals = queueState.counters.totals
            stats.lastMinute = queueState.counters.lastMinute(at: now)
            return stats
        }
    }

    /// A queue that does not exist yet may be created only below ``maximumQueues``. Dead-letter
    /// queues are exempt: a failed message is never dropped for want of a place.
    private func checkQueueLimit(_ queue: QueueName, in state: borrowing State) throws(QueueError) {
        if state.queues[queue] == nil, state.queues.count >= maximumQueues {
            throw QueueError.tooManyQueues(queue, maximum: maximumQueues)
        }
    }

    public func queues() async throws -> [QueueSummary] {
        state.withLock { state in
            state.queues.map { name, queueState in
                QueueSummary(name: name, ready: queueState.readyCount, inFlight: queueState.inFlight.count, delayed: queueState.delayed.count)
            }
        }.sorted { $0.name < $1.name }
    }

    @discardableResult
    public func purge(_ queue: QueueName) async throws -> Int {
        state.withLock { state in
            guard state.queues[queue] != nil else { return 0 }
            return state.queues[queue]!.modify { queueState in
                let count = queueState.depth
                queueState.ready = QueueState.emptyPriorities
                queueState.inFlight = [:]
                queueState.leases = Heap()
                queueState.delayed = Heap()
                return count
            }
        }
    }

    @discardableResult
    public func delete(_ queue: QueueName) async throws -> Bool {
        state.withLock { $0.queues.removeValue(forKey: queue) != nil }
    }

    public func health() async -> BackendHealth {
        let (queues, ready, inFlight, delayed) = state.withLock { state in
            state.queues.values.reduce((state.queues.count, 0, 0, 0)) { sum, queue in
                (sum.0, sum.1 + queue.readyCount, sum.2 + queue.inFlight.count, sum.3 + queue.delayed.count)
            }
        }
        return BackendHealth(
            isHealthy: true,
            backend: "memory",
            details: [
                "queues": "\(queues)", "messages.ready": "\(ready)", "messages.inFlight": "\(inFlight)", "messages.delayed": "\(delayed)",
                "waiters": "\(waiters.totalCount)",
            ]
        )
    }

    // MARK: Lifecycle and maintenance

    /// Ends waits with "no message" and refuses new ones: the first step of a graceful shutdown.
    public func beginShutdown() {
        state.withLock { $0.isShuttingDown = true }
        waiters.resolveAll(with: .timedOut)
    }

    /// Runs ``maintain()`` every `maintenanceInterval` until graceful shutdown.
    public func run() async throws {
        await cancelWhenGracefulShutdown {
            while !Task.isCancelled {
                try? await Task.sleep(for: self.maintenanceInterval)
                if Task.isCancelled { break }
                self.maintain()
            }
        }
        beginShutdown()
    }

    /// One round of maintenance, what ``run()`` does on its timer; public so tests can drive it.
    ///
    /// Returns claims whose lease or visibility timeout passed (the failed-receive rule: back to
    /// the head, or to the dead-letter queue), makes due delayed messages ready, removes expired
    /// messages from the heads of the priorities and forgets idempotency keys past their window.
    /// Each step costs O(what it changes) per queue. Consumers waiting on a queue that got ready
    /// messages are served.
    public func maintain() {
        let now = ContinuousClock.now
        let wall = wallClock()
        let (wakes, recovered) = state.withLock { state -> (Set<QueueName>, Int) in
            var wakes = Set<QueueName>()
            var recovered = 0
            for name in Array(state.queues.keys) {
                // An earlier queue's dead letters may have created or changed this one; a deleted one is skipped.
                guard state.queues[name] != nil else { continue }
                for claim in state.queues[name]!.takeExpiredClaims(at: now) {
                    // An acknowledged consumer letting its visibility timeout pass is ordinary; an
                    // auto-acknowledge claim outliving its lease means a replica stalled.
                    if !claim.isAcknowledgedMode { recovered += 1 }
                    Self.failedReceive(claim.message, of: name, retry: .fixed(milliseconds: 0), reason: nil, in: &state, now: wall, wakes: &wakes)
                }
                state.queues[name]!.modify { queueState in
                    if queueState.promoteDueMessages(at: wall) { wakes.insert(name) }
                    queueState.removeExpiredHeads(at: wall)
                    queueState.forgetIdempotencyKeys(at: wall)
                }
            }
            return (wakes, recovered)
        }
        if recovered > 0 { logger.warning("recovered auto-acknowledge claims whose lease expired", metadata: ["message.count": "\(recovered)"]) }
        for queue in wakes { dispatch(queue) }
    }

    /// The maintenance round (kept under its earlier name, which the lease tests use).
    public func recoverExpiredClaims() {
        maintain()
    }

    // MARK: Rules shared by the operations above (all run under the lock)

    private enum RetryDelay {
        /// 0: ready at once, at the head.
        case fixed(milliseconds: Int64)
        /// The queue's retry backoff after the message's receive count, with jitter.
        case backoff
    }

    /// Claims up to `max` messages from the heads of `queue`'s priorities, highest first.
    private static func claim(
        _ queue: QueueName,
        max: Int,
        maxBytes: Int? = nil,
        in state: inout State,
        now: Int64,
        claimedAt: ContinuousClock.Instant,
        lease: Duration,
        isAcknowledgedMode: Bool,
        wakes: inout Set<QueueName>
    ) -> ClaimedMessages {
        var deliveries: [Delivery] = []
        var bytes = 0
        while deliveries.count < max, prepareHead(of: queue, in: &state, now: now, wakes: &wakes) {
            if let maxBytes, !deliveries.isEmpty, let head = state.queues[queue]!.peekHead(), bytes + head.body.readableBytes > maxBytes {
                return ClaimedMessages(deliveries: deliveries, stoppedAtByteLimit: true)
            }
            state.queues[queue]!.modify { queueState in
                guard var message = queueState.popHead() else { return }
                message.receiveCount += 1
                message.claims += 1
                if message.firstReceivedAtMilliseconds == nil { message.firstReceivedAtMilliseconds = now }
                message.lastReceivedAtMilliseconds = now
                bytes += message.body.readableBytes
                queueState.inFlight[message.id] = Claim(message: message, leaseExpiry: claimedAt + lease, isAcknowledgedMode: isAcknowledgedMode)
                queueState.leases.push(LeaseEntry(expiry: claimedAt + lease, messageID: message.id, claimToken: message.claims))
                queueState.counters.record(\.delivered, 1, at: now)
                deliveries.append(
                    Delivery(
                        queue: queue,
                        message: message.snapshot,
                        claimToken: message.claims,
                        claimedAt: claimedAt,
                        lease: lease,
                        isAcknowledgedMode: isAcknowledgedMode
                    )
                )
            }
        }
        return ClaimedMessages(deliveries: deliveries)
    }

    /// Makes due delayed messages ready, then clears the way to a claimable head: expired
    /// messages met on the way are removed, ones whose receive count reached a lowered
    /// `maxReceiveCount` are dead-lettered.
    /// - Returns: whether `queue` has a head that can be claimed.
    private static func prepareHead(of queue: QueueName, in state: inout State, now: Int64, wakes: inout Set<QueueName>) -> Bool {
        guard state.queues[queue] != nil else { return false }
        while true {
            let settings = state.queues[queue]!.effectiveSettings
            let outcome = state.queues[queue]!.modify { queueState -> (claimable: Bool, deadLetter: StoredMessage?) in
                _ = queueState.promoteDueMessages(at: now)
                guard let head = queueState.peekHead() else { return (false, nil) }
                if now - head.enqueuedAtMilliseconds >= settings.retentionMilliseconds {
                    _ = queueState.popHead()
                    queueState.counters.record(\.expired, 1, at: now)
                    return (false, nil)
                }
                if let maxReceiveCount = settings.maxReceiveCount, head.receiveCount >= maxReceiveCount {
                    return (false, queueState.popHead())
                }
                return (true, nil)
            }
            if outcome.claimable { return true }
            if let message = outcome.deadLetter {
                deadLetter(message, from: queue, in: &state, now: now, wakes: &wakes)
            } else if state.queues[queue]!.peekHead() == nil {
                return false
            }
        }
    }

    /// A receive that failed (nack, visibility 0, expired lease): removed if past retention,
    /// dead-lettered if it used `maxReceiveCount`, otherwise retried at the head or after a delay.
    private static func failedReceive(
        _ message: StoredMessage,
        of queue: QueueName,
        retry: RetryDelay,
        reason: String?,
        in state: inout State,
        now: Int64,
        wakes: inout Set<QueueName>
    ) {
        guard state.queues[queue] != nil else { return }
        var message = message
        if let reason { message.lastError = reason }
        let settings = state.queues[queue]!.effectiveSettings
        if now - message.enqueuedAtMilliseconds >= settings.retentionMilliseconds {
            state.queues[queue]!.counters.record(\.expired, 1, at: now)
            return
        }
        if let maxReceiveCount = settings.maxReceiveCount, message.receiveCount >= maxReceiveCount {
            deadLetter(message, from: queue, in: &state, now: now, wakes: &wakes)
            return
        }
        let delay: Int64
        switch retry {
        case .fixed(let milliseconds): delay = milliseconds
        case .backoff: delay = settings.retryDelayMilliseconds(receiveCount: message.receiveCount, jitter: Double.random(in: 0..<1))
        }
        state.queues[queue]!.modify { queueState in
            queueState.counters.record(\.retried, 1, at: now)
            if delay > 0 {
                // Due no later than its expiry, so a long delay cannot keep an expired message counted as delayed.
                let due = min(now + delay, message.enqueuedAtMilliseconds + settings.retentionMilliseconds)
                queueState.delayed.push(DelayedMessage(dueAtMilliseconds: due, message: message, isReturning: true))
            } else {
                queueState.requeueAtHead(message)
                wakes.insert(queue)
            }
        }
    }

    /// Moves `message` to the tail of `queue`'s dead-letter queue with its history.
    private static func deadLetter(_ message: StoredMessage, from queue: QueueName, in state: inout State, now: Int64, wakes: inout Set<QueueName>) {
        guard state.queues[queue] != nil else { return }
        let target = state.queues[queue]!.effectiveSettings.deadLetterQueue(of: queue)
        state.queues[queue]!.counters.record(\.deadLettered, 1, at: now)
        var dead = message
        dead.deadLetter = DeadLetterHistory(
            sourceQueue: queue,
            receiveCount: message.receiveCount,
            firstReceivedAtMilliseconds: message.firstReceivedAtMilliseconds ?? now,
            lastReceivedAtMilliseconds: message.lastReceivedAtMilliseconds ?? now,
            lastError: message.lastError
        )
        dead.enqueuedAtMilliseconds = now
        dead.receiveCount = 0
        dead.firstReceivedAtMilliseconds = nil
        dead.lastReceivedAtMilliseconds = nil
        dead.lastError = nil
        state.queues[target, default: QueueState()].modify { deadLetterQueue in
            deadLetterQueue.sequence += 1
            dead.sequence = deadLetterQueue.sequence
            deadLetterQueue.ready[dead.priority].append(dead)
            deadLetterQueue.counters.record(\.enqueued, 1, at: now)
        }
        wakes.insert(target)
    }

    /// Hands ready messages to waiters, oldest message to oldest waiter.
    private func dispatch(_ queue: QueueName) {
        var pending: Set<QueueName> = [queue]
        while let queue = pending.popFirst() {
            while true {
                let claimedAt = ContinuousClock.now
                let now = wallClock()
                let (handOff, wakes) = state.withLock { state -> ((WaiterRegistry.TakenWaiter, Delivery)?, Set<QueueName>) in
                    var wakes = Set<QueueName>()
                    // A waiter is taken only when a claim for it is sure to succeed. Without one, the
                    // head is left alone: dead-lettering or expiring it is the next claim's (or the
                    // sweep's) work, as in Redis, not a send's.
                    guard waiters.count(on: queue) > 0, Self.prepareHead(of: queue, in: &state, now: now, wakes: &wakes),
                        let waiter = waiters.takeOldest(queue),
                        let delivery = Self.claim(
                            queue,
                            max: 1,
                            in: &state,
                            now: now,
                            claimedAt: claimedAt,
                            lease: claimLease,
                            isAcknowledgedMode: false,
                            wakes: &wakes
                        ).deliveries.first
                    else { return (nil, wakes) }
                    return ((waiter, delivery), wakes)
                }
                pending.formUnion(wakes.subtracting([queue]))
                guard let (waiter, delivery) = handOff else { break }
                waiter.resume(.delivered(delivery))
            }
        }
    }
}

// MARK: - Stored state

extension MemoryQueueBackend {
    fileprivate struct StoredMessage {
        /// Order within the queue: requeued messages go back among the head in this order.
        var sequence: UInt64
        let id: String
        let body: ByteBuffer
        var enqueuedAtMilliseconds: Int64
        let priority: Int
        var receiveCount = 0
        /// Claims so far; never decreases (not even across dead-lettering and redrive), so it
        /// identifies one delivery (the claim token).
        var claims = 0
        var firstReceivedAtMilliseconds: Int64?
        var lastReceivedAtMilliseconds: Int64?
        var lastError: String?
        var deadLetter: DeadLetterHistory?

        var snapshot: QueueMessage {
            QueueMessage(
                id: id,
                body: body,
                enqueuedAtMilliseconds: enqueuedAtMilliseconds,
                receiveCount: receiveCount,
                priority: priority,
                lastError: lastError,
                deadLetter: deadLetter
            )
        }
    }

    fileprivate struct Claim {
        var message: StoredMessage
        var leaseExpiry: ContinuousClock.Instant
        var isAcknowledgedMode: Bool
    }

    /// One lease to check when it ends. A renewed lease leaves its old entry behind; an entry whose
    /// claim has moved on is skipped when it comes up.
    fileprivate struct LeaseEntry: Comparable {
        let expiry: ContinuousClock.Instant
        let messageID: String
        let claimToken: Int

        static func < (lhs: Self, rhs: Self) -> Bool { lhs.expiry < rhs.expiry }
        static func == (lhs: Self, rhs: Self) -> Bool {
            lhs.expiry == rhs.expiry && lhs.messageID == rhs.messageID && lhs.claimToken == rhs.claimToken
        }
    }

    fileprivate struct DelayedMessage: Comparable {
        let dueAtMilliseconds: Int64
        let message: StoredMessage
        /// Back from a nack: it goes to the head when due, not to the tail.
        let isReturning: Bool

        static func < (lhs: Self, rhs: Self) -> Bool {
            (lhs.dueAtMilliseconds, lhs.message.sequence) < (rhs.dueAtMilliseconds, rhs.message.sequence)
        }
        static func == (lhs: Self, rhs: Self) -> Bool {
            lhs.dueAtMilliseconds == rhs.dueAtMilliseconds && lhs.message.sequence == rhs.message.sequence
        }
    }

    fileprivate struct StoredIdempotencyKey {
        let sentAtMilliseconds: Int64
        let messages: [SentMessage]
    }

    fileprivate struct QueueState {
        static let emptyPriorities = Array(repeating: CircularBuffer<StoredMessage>(), count: SendOptions.maximumPriority + 1)

        /// `nil`: never configured, the defaults apply.
        var settings: QueueSettings?
        var sequence: UInt64 = 0
        /// Ready messages by priority, each FIFO.
        var ready = emptyPriorities
        var inFlight: [String: Claim] = [:]
        var leases = Heap<LeaseEntry>()
        var delayed = Heap<DelayedMessage>()
        var idempotencyKeys: [String: StoredIdempotencyKey] = [:]
        /// Keys in the order they were stored, to forget them in O(expired).
        var idempotencyKeyOrder = CircularBuffer<(sentAtMilliseconds: Int64, key: String)>()
        var counters = Counters()

        var effectiveSettings: QueueSettings { settings ?? QueueSettings() }
        var readyCount: Int { ready.reduce(0) { $0 + $1.count } }
        var hasReadyMessages: Bool { ready.contains { !$0.isEmpty } }
        /// What `maxDepth` limits.
        var depth: Int { readyCount + inFlight.count + delayed.count }

        /// Mutates in place (through `Dictionary`'s subscript), so the buffers are never copied.
        mutating func modify<Result>(_ body: (inout QueueState) throws -> Result) rethrows -> Result {
            try body(&self)
        }

        func holds(_ messageID: String, claimToken: Int, at now: ContinuousClock.Instant) -> Bool {
            guard let claim = inFlight[messageID] else { return false }
            return claim.message.claims == claimToken && claim.leaseExpiry > now
        }

        mutating func setLease(of messageID: String, to expiry: ContinuousClock.Instant, isAcknowledgedMode: Bool) {
            guard let claim = inFlight[messageID] else { return }
            inFlight[messageID]?.leaseExpiry = expiry
            inFlight[messageID]?.isAcknowledgedMode = isAcknowledgedMode
            leases.push(LeaseEntry(expiry: expiry, messageID: messageID, claimToken: claim.message.claims))
        }

        func peekHead() -> StoredMessage? {
            for priority in ready.indices.reversed() where !ready[priority].isEmpty {
                return ready[priority].first
            }
            return nil
        }

        /// The head of the highest non-empty priority.
        mutating func popHead() -> StoredMessage? {
            for priority in ready.indices.reversed() where !ready[priority].isEmpty {
                return ready[priority].removeFirst()
            }
            return nil
        }

        /// Back at the head of its priority, after messages put back earlier that were enqueued
        /// before it (as the Redis backend's `requeue`).
        mutating func requeueAtHead(_ message: StoredMessage) {
            let priority = message.priority
            var position = 0
            while position < ready[priority].count, position < 1000,
                ready[priority][ready[priority].index(ready[priority].startIndex, offsetBy: position)].sequence < message.sequence
            {
                position += 1
            }
            ready[priority].insert(message, at: ready[priority].index(ready[priority].startIndex, offsetBy: position))
        }

        /// Claims whose lease ended, in the order they were enqueued, taken out of flight.
        mutating func takeExpiredClaims(at now: ContinuousClock.Instant) -> [Claim] {
            var expired: [Claim] = []
            while let entry = leases.peek(), entry.expiry <= now {
                _ = leases.pop()
                guard let claim = inFlight[entry.messageID], claim.message.claims == entry.claimToken, claim.leaseExpiry <= now else { continue }
                inFlight[entry.messageID] = nil
                expired.append(claim)
            }
            return expired.sorted { $0.message.sequence < $1.message.sequence }
        }

        /// Makes delayed messages whose time came ready; `true` if any did.
        mutating func promoteDueMessages(at now: Int64) -> Bool {
            var promoted = false
            while let next = delayed.peek(), next.dueAtMilliseconds <= now {
                _ = delayed.pop()
                if now - next.message.enqueuedAtMilliseconds >= effectiveSettings.retentionMilliseconds {
                    counters.record(\.expired, 1, at: now)
                    continue
                }
                if next.isReturning {
                    requeueAtHead(next.message)
                } else {
                    ready[next.message.priority].append(next.message)
                }
                promoted = true
            }
            return promoted
        }

        /// Removes expired messages from the head of each priority (one behind a younger message
        /// waits until it reaches the head).
        mutating func removeExpiredHeads(at now: Int64) {
            let retention = effectiveSettings.retentionMilliseconds
            for priority in ready.indices {
                while let head = ready[priority].first, now - head.enqueuedAtMilliseconds >= retention {
                    ready[priority].removeFirst()
                    counters.record(\.expired, 1, at: now)
                }
            }
        }

        mutating func forgetIdempotencyKeys(at now: Int64) {
            let window = effectiveSettings.dedupWindowMilliseconds
            while let oldest = idempotencyKeyOrder.first, now - oldest.sentAtMilliseconds >= window {
                idempotencyKeyOrder.removeFirst()
                // The key may have been stored again since; only its own entry goes.
                if idempotencyKeys[oldest.key]?.sentAtMilliseconds == oldest.sentAtMilliseconds { idempotencyKeys[oldest.key] = nil }
            }
        }
    }

    /// Exact totals plus 10-second buckets for the last complete minute.
    fileprivate struct Counters {
        static let bucketMilliseconds: Int64 = 10_000
        static let bucketsPerMinute: Int64 = 6

        private(set) var totals = QueueCounters()
        /// The most recent buckets, oldest first, by index (Unix milliseconds / 10 s).
        private var buckets: [(index: Int64, counters: QueueCounters)] = []

        mutating func record(_ counter: WritableKeyPath<QueueCounters, Int64>, _ amount: Int64, at now: Int64) {
            totals[keyPath: counter] += amount
            let index = Self.bucket(of: now)
            if let last = buckets.last, last.index >= index {
                // Same bucket (or a clock that stepped back: keep it in the latest).
                buckets[buckets.count - 1].counters[keyPath: counter] += amount
            } else {
                var counters = QueueCounters()
                counters[keyPath: counter] = amount
                buckets.append((index, counters))
                if buckets.count > Int(Self.bucketsPerMinute) + 1 { buckets.removeFirst(buckets.count - Int(Self.bucketsPerMinute) - 1) }
            }
        }

        /// A release takes back a delivery, in the bucket that counted it if it is still kept.
        mutating func takeBackDelivery(countedAt: Int64) {
            totals.delivered -= 1
            let index = Self.bucket(of: countedAt)
            if let position = buckets.lastIndex(where: { $0.index == index }) {
                buckets[position].counters.delivered -= 1
            } else if let last = buckets.indices.last, buckets[last].index < index {
                buckets[last].counters.delivered -= 1
            }
        }

        /// The six complete buckets before the current one.
        func lastMinute(at now: Int64) -> QueueCounters {
            let current = Self.bucket(of: now)
            var sum = QueueCounters()
            for bucket in buckets where bucket.index < current && bucket.index >= current - Self.bucketsPerMinute {
                sum.enqueued += bucket.counters.enqueued
                sum.delivered += bucket.counters.delivered
                sum.acknowledged += bucket.counters.acknowledged
                sum.retried += bucket.counters.retried
                sum.deadLettered += bucket.counters.deadLettered
                sum.expired += bucket.counters.expired
            }
            return sum
        }

        private static func bucket(of milliseconds: Int64) -> Int64 {
            milliseconds >= 0 ? milliseconds / bucketMilliseconds : (milliseconds - bucketMilliseconds + 1) / bucketMilliseconds
        }
    }

    fileprivate struct State {
        var queues: [QueueName: QueueState] = [:]
        var isShuttingDown = false
    }
}

/// A binary min-heap.
private struct Heap<Element: Comparable> {
    private var storage: [Element] = []

    var count: Int { storage.count }
    func peek() -> Element? { storage.first }

    mutating func push(_ element: Element) {
        storage.append(element)
        var child = storage.count - 1
        while child > 0 {
            let parent = (child - 1) / 2
            guard storage[child] < storage[parent] else { break }
            storage.swapAt(child, parent)
            child = parent
        }
    }

    mutating func pop() -> Element? {
        guard !storage.isEmpty else { return nil }
        storage.swapAt(0, storage.count - 1)
        let top = storage.removeLast()
        var parent = 0
        while true {
            let left = 2 * parent + 1
            let right = left + 1
            var smallest = parent
            if left < storage.count, storage[left] < storage[smallest] { smallest = left }
            if right < storage.count, storage[right] < storage[smallest] { smallest = right }
            if smallest == parent { break }
            storage.swapAt(parent, smallest)
            parent = smallest
        }
        return top
    }
}
