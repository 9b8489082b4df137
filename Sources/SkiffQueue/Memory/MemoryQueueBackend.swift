public import Logging
public import NIOCore
public import ServiceLifecycle
import SkiffSupport
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
    let state = Mutex(State())
    private let waiters: WaiterRegistry
    private let claimLease: Duration
    /// Queues this backend may hold (`MAX_QUEUES`); creating one more is refused.
    let maximumQueues: Int
    private let maintenanceInterval: Duration
    let wallClock: @Sendable () -> Int64
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
        try options.validate(bodies: bodies.count)
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
                for (index, body) in bodies.enumerated() {
                    let id = options.messageIDs?[index] ?? MessageID.make(nowMilliseconds: now)
                    queueState.enqueue(id: id, body: body, priority: options.priority, delayMilliseconds: delay, at: now, traceContext: options.traceContext)
                    sent.append(SentMessage(id: id, queue: queue, enqueuedAtMilliseconds: now))
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

    public func claimsHeld(_ receipts: [Receipt], in queue: QueueName) async throws -> [Bool] {
        let now = ContinuousClock.now
        return state.withLock { state in
            receipts.map { state.queues[queue]?.holds($0.messageID, claimToken: $0.claimToken, at: now) == true }
        }
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
            // Checked where the count is stored, so two concurrent changes cannot shrink it.
            if let current = state.queues[queue]?.settings?.partitions, current > settings.partitions {
                throw QueueError.partitionsShrink(queue, current: current)
            }
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
                        source.recordExpiry(of: message, at: now)
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

    public func peek(_ queue: QueueName, limit: Int, maximumBytes: Int) async throws -> [QueueMessage] {
        let now = wallClock()
        return state.withLock { state in
            guard let queueState = state.queues[queue] else { return [] }
            let retention = queueState.effectiveSettings.retentionMilliseconds
            var (peeked, bytes) = ([QueueMessage](), 0)
            for priority in queueState.ready.indices.reversed() {
                for message in queueState.ready[priority] where now - message.enqueuedAtMilliseconds < retention {
                    guard peeked.count < limit, peeked.isEmpty || bytes + message.body.readableBytes <= maximumBytes else { return peeked }
                    bytes += message.body.readableBytes
                    peeked.append(message.snapshot)
                }
            }
            return peeked
        }
    }

    /// The same search and bounds as the Redis script: in flight by id, then ready messages in
    /// receive order, then delayed ones, at most ``MessageLookup/maximumScanned`` of them (and
    /// ``MessageLookup/maximumScannedBytes``), so a lookup holds the lock briefly whatever the queue.
    public func lookUp(_ id: String, in queue: QueueName) async throws -> MessageLookup {
        let now = wallClock()
        return state.withLock { state in
            guard let queueState = state.queues[queue] else { return .notFound(searchedAll: true) }
            if let claim = queueState.inFlight[id] { return .found(claim.message.snapshot, .inFlight) }
            let retention = queueState.effectiveSettings.retentionMilliseconds
            var (looked, bytes) = (0, 0)
            func exhausted() -> Bool { looked >= MessageLookup.maximumScanned || bytes >= MessageLookup.maximumScannedBytes }
            for priority in queueState.ready.indices.reversed() {
                for message in queueState.ready[priority] {
                    if exhausted() { return .notFound(searchedAll: false) }
                    (looked, bytes) = (looked + 1, bytes + message.body.readableBytes)
                    guard message.id == id else { continue }
                    // Past retention it is as good as expired (a peek leaves it out too); ids are
                    // unique in a queue, so it is nowhere else.
                    return now - message.enqueuedAtMilliseconds < retention ? .found(message.snapshot, .ready) : .notFound(searchedAll: true)
                }
            }
            var found: StoredMessage?
            queueState.delayed.forEach { delayed in
                guard found == nil, !exhausted() else { return }
                (looked, bytes) = (looked + 1, bytes + delayed.message.body.readableBytes)
                if delayed.message.id == id { found = delayed.message }
            }
            if let found { return .found(found.snapshot, .delayed) }
            return .notFound(searchedAll: looked >= queueState.readyCount + queueState.delayed.count)
        }
    }

    public func recordHistory(_ sample: QueueHistorySample, of queue: QueueName, interval: Duration) async throws {
        let now = wallClock()
        var sample = sample
        sample.atMilliseconds = QueueHistorySample.intervalStart(of: now, interval: interval)
        sample.measuredAtMilliseconds = now
        state.withLock { state in
            // A queue deleted since its figures were read gets no history back.
            guard state.queues[queue] != nil else { return }
            var samples = state.histories.removeValue(forKey: queue) ?? CircularBuffer()
            if let last = samples.last, last.atMilliseconds >= sample.atMilliseconds {
                state.histories[queue] = samples
                return
            }
            samples.append(sample)
            let oldest = now - QueueHistorySample.window.milliseconds
            while let first = samples.first, first.atMilliseconds <= oldest || samples.count > QueueHistorySample.capacity {
                samples.removeFirst()
            }
            state.histories[queue] = samples
        }
    }

    public func history(of queue: QueueName) async throws -> [QueueHistorySample] {
        let oldest = wallClock() - QueueHistorySample.window.milliseconds
        return state.withLock { state in (state.histories[queue] ?? []).filter { $0.atMilliseconds > oldest } }
    }

    @discardableResult
    public func purge(_ queue: QueueName) async throws -> Int {
        state.withLock { state in
            guard state.queues[queue] != nil else { return 0 }
            let buried = state.queues[queue]!.offloadedIDs
            Self.bury(buried, in: &state)
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
        state.withLock { state in
            state.histories[queue] = nil
            guard let removed = state.queues.removeValue(forKey: queue) else { return false }
            Self.bury(removed.offloadedIDs + removed.buried, in: &state)
            return true
        }
    }

    /// Ids a graveyard keeps at most, as the Redis one does: past it the oldest are left to the sweep.
    static let graveyardCapacity = 100_000

    static func bury(_ ids: [String], in state: inout State) {
        guard !ids.isEmpty else { return }
        state.graveyard += ids
        if state.graveyard.count > graveyardCapacity { state.graveyard.removeFirst(state.graveyard.count - graveyardCapacity) }
    }

    public func takeBuriedPayloads(max: Int) async throws -> [String] {
        state.withLock { state in
            // Expired messages wait in their queues; they join the graveyard as it is read.
            for name in Array(state.queues.keys) where !(state.queues[name]!.buried.isEmpty) {
                let buried = state.queues[name]!.modify { queueState in
                    defer { queueState.buried = [] }
                    return queueState.buried
                }
                Self.bury(buried, in: &state)
            }
            let taken = Array(state.graveyard.prefix(max))
            state.graveyard.removeFirst(taken.count)
            return taken
        }
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

    /// Hands ready messages to waiters, oldest message to oldest waiter.
    func dispatch(_ queue: QueueName) {
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
