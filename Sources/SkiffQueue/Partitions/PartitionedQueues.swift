public import NIOCore
import Synchronization

/// Partitioned queues over any backend: a queue configured with `partitions: N` is stored as N
/// queues, itself (partition 0) and `q~1` ... `q~N-1` (``QueueName/partition(_:)``), which a Redis
/// Cluster places on slots of their own, so one hot queue spreads over its shards
/// (docs/partitions.md). Every other queue passes straight through.
///
/// - Sends go to one partition each, in turn (a batch whole, so it stays all-or-none); a send with
///   an `Idempotency-Key` always to the partition the key hashes to, so a retry finds its first
///   attempt. A full partition (its `maxDepth`, which bounds each partition) passes the send on to
///   the next one; 429 only when every partition is full.
/// - Receives start at the next partition in turn and take from the first that has messages, so
///   every partition is served; a consumer that is going to wait skips the partitions this replica
///   knows to be empty (``QueueBackend/isKnownEmpty(_:)``), then waits on all of them at once and
///   takes the first message that arrives anywhere. A batch comes from one partition. FIFO and
///   priority order hold within a partition.
/// - A receipt names its partition (`<id>~p.<token>`), so acks, nacks and visibility changes go
///   straight to it; each partition keeps its own exactly-once claims, retries and dead letters
///   (partition p's dead-letter queue is partition p of the queue's dead-letter queue).
/// - Stats, the queue list, purge, delete and redrive cover every partition.
/// - The count can only grow (a smaller one is refused with ``QueueError/conflict(_:)``): a
///   message is never left in a partition nobody reads. Each replica reads a queue's count at most
///   ``refreshInterval`` ago, so a replica that has not seen a new count yet keeps using the old
///   partitions meanwhile, which all stay served.
public final class PartitionedQueues: QueueBackend {
    public let inner: any QueueBackend
    /// How long a replica uses a queue's partition count before reading it again.
    public let refreshInterval: Duration

    /// Each queue's partition count, as read at most ``refreshInterval`` ago.
    private let counts: RecentlyRead<Int>
    private let sendTurn = Atomic<UInt64>(0)
    private let receiveTurn = Atomic<UInt64>(0)

    public init(_ inner: any QueueBackend, refreshInterval: Duration = .seconds(1)) {
        self.inner = inner
        self.refreshInterval = refreshInterval
        self.counts = RecentlyRead(refreshInterval: refreshInterval)
    }

    // MARK: The partition count

    /// The queue's partition count, as read at most ``refreshInterval`` ago (or now, `fresh`).
    /// When it cannot be read (the shard of partition 0 is failing over, say), the last count
    /// read serves, so the other partitions stay usable.
    func partitions(of queue: QueueName, fresh: Bool = false) async throws -> Int {
        try await counts.value(of: queue, fresh: fresh) {
            try await inner.settings(of: queue).partitions
        } check: { count in
            // Stored by a newer version or by hand: refused rather than trusted.
            guard (1...QueueName.maximumPartitions).contains(count) else {
                throw QueueError.internalError("queue \(queue) has a stored partition count of \(count), outside 1...\(QueueName.maximumPartitions)")
            }
        }
    }

    private func remember(_ count: Int, of queue: QueueName) {
        counts.remember(count, of: queue)
    }

    private func forget(_ queue: QueueName) {
        counts.forget(queue)
    }

    /// The partition an idempotency key always goes to, for a queue of `count` partitions
    /// (FNV-1a: the same in every replica and every version).
    public static func partition(ofKey key: String, count: Int) -> Int {
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        for byte in key.utf8 {
            hash ^= UInt64(byte)
            hash &*= 0x0100_0000_01b3
        }
        return Int(hash % UInt64(count))
    }

    /// Partitions in the order this call visits them: from the next one in turn, all of them.
    private func rotation(_ count: Int, turn: borrowing Atomic<UInt64>) -> [Int] {
        let start = Int(turn.wrappingAdd(1, ordering: .relaxed).oldValue % UInt64(count))
        return (0..<count).map { (start + $0) % count }
    }

    // MARK: Sending and delivering

    public func send(_ bodies: [ByteBuffer], to queue: QueueName, options: SendOptions) async throws -> [SentMessage] {
        let count = try await partitions(of: queue)
        if count == 1 { return try await inner.send(bodies, to: queue, options: options) }
        let order =
            options.idempotencyKey.map { [Self.partition(ofKey: $0, count: count)] } ?? rotation(count, turn: sendTurn)
        for partition in order {
            do {
                let sent = try await inner.send(bodies, to: queue.partition(partition), options: options)
                return sent.map { SentMessage(id: $0.id, queue: queue, enqueuedAtMilliseconds: $0.enqueuedAtMilliseconds, isDuplicate: $0.isDuplicate) }
            } catch let error as QueueError where error.kind == .queueFull {
                continue
            }
        }
        let maxDepth = try await inner.settings(of: queue).maxDepth ?? 0
        throw QueueError.queueFull(queue, maxDepth: maxDepth, partitions: count)
    }

    /// The partition a topic's copy of a message goes to: the one an idempotency key hashes
    /// to, else the next in turn (the queue itself when it has one partition).
    public func partition(forCopyTo queue: QueueName, idempotencyKey: String?) async throws -> QueueName {
        let count = try await partitions(of: queue)
        if count == 1 { return queue }
        let index = idempotencyKey.map { Self.partition(ofKey: $0, count: count) } ?? rotation(count, turn: sendTurn)[0]
        return queue.partition(index)
    }

    public func deliver(_ request: DeliveryRequest, context: DeliveryContext) async throws -> DeliveryLease? {
        let count = try await partitions(of: request.queue)
        if count == 1 { return try await inner.deliver(request, context: context) }
        let partitions = rotation(count, turn: receiveTurn).map { request.queue.partition($0) }
        let waits = request.timeout > .zero
        // The wait gauge counts this request once, not once per partition.
        var quiet = context
        quiet.observer = nil
        // One pass over the partitions that may have messages. A poll (no timeout) looks at every
        // one, so it sees a message whose send has returned even if its wake-up is on its way.
        // A failing partition (its shard down) does not keep the others from serving; its error
        // is thrown only if no partition had a message.
        var failure: (any Error)?
        for partition in partitions where !(waits && inner.isKnownEmpty(partition)) {
            var now = request
            now.queue = partition
            now.timeout = .zero
            do {
                if let lease = try await inner.deliver(now, context: quiet) { return lease }
            } catch let error as QueueError {
                failure = failure ?? error
            }
        }
        guard waits else {
            if let failure { throw failure }
            return nil
        }
        context.observer?.waitStarted()
        defer { context.observer?.waitFinished() }
        return try await firstLease(request, on: partitions, context: quiet)
    }

    /// Waits on every partition at once; the first lease wins, the others' waits are cancelled (a
    /// message claimed meanwhile goes back at once) and any other lease that still arrives is
    /// released. A partition that fails does not end the wait on the others; its error is thrown
    /// only if no message came.
    private func firstLease(_ request: DeliveryRequest, on partitions: [QueueName], context: DeliveryContext) async throws -> DeliveryLease? {
        try await withThrowingTaskGroup(of: DeliveryLease?.self) { group in
            for partition in partitions {
                var waiting = request
                waiting.queue = partition
                group.addTask { try await self.inner.deliver(waiting, context: context) }
            }
            var winner: DeliveryLease?
            var failure: (any Error)?
            while let result = await group.nextResult() {
                switch result {
                case .success(let lease?) where winner == nil:
                    winner = lease
                    group.cancelAll()
                case .success(let lease?):
                    await lease.release()
                case .success(nil):
                    continue
                case .failure(let error):
                    if !(error is CancellationError), failure == nil { failure = error }
                }
            }
            if let winner { return winner }
            try Task.checkCancellation()
            if let failure { throw failure }
            return nil
        }
    }

    // MARK: Settling by receipt

    /// Whether `partition` exists for `queue` (a receipt naming another cannot be ours).
    private func exists(_ partition: Int, of queue: QueueName) async throws -> Bool {
        if partition == 0 { return true }
        if partition < (try await partitions(of: queue)) { return true }
        return partition < (try await partitions(of: queue, fresh: true))
    }

    public func acknowledge(_ receipts: [Receipt], in queue: QueueName) async throws -> [Bool] {
        if receipts.allSatisfy({ $0.partition == 0 }) { return try await inner.acknowledge(receipts, in: queue) }
        var results = [Bool](repeating: false, count: receipts.count)
        let byPartition = Dictionary(grouping: receipts.indices, by: { receipts[$0].partition })
        for (partition, indices) in byPartition.sorted(by: { $0.key < $1.key }) where try await exists(partition, of: queue) {
            let acked = try await inner.acknowledge(indices.map { receipts[$0] }, in: queue.partition(partition))
            for (index, ok) in zip(indices, acked) { results[index] = ok }
        }
        return results
    }

    public func claimsHeld(_ receipts: [Receipt], in queue: QueueName) async throws -> [Bool] {
        if receipts.allSatisfy({ $0.partition == 0 }) { return try await inner.claimsHeld(receipts, in: queue) }
        var results = [Bool](repeating: false, count: receipts.count)
        let byPartition = Dictionary(grouping: receipts.indices, by: { receipts[$0].partition })
        for (partition, indices) in byPartition where try await exists(partition, of: queue) {
            let held = try await inner.claimsHeld(indices.map { receipts[$0] }, in: queue.partition(partition))
            for (index, isHeld) in zip(indices, held) { results[index] = isHeld }
        }
        return results
    }

    public func reject(_ receipt: Receipt, in queue: QueueName, delay: Duration?, reason: String?) async throws -> Bool {
        guard try await exists(receipt.partition, of: queue) else { return false }
        return try await inner.reject(receipt, in: queue.partition(receipt.partition), delay: delay, reason: reason)
    }

    public func changeVisibility(_ receipt: Receipt, in queue: QueueName, timeout: Duration) async throws -> Bool {
        guard try await exists(receipt.partition, of: queue) else { return false }
        return try await inner.changeVisibility(receipt, in: queue.partition(receipt.partition), timeout: timeout)
    }

    // MARK: Settings

    public func settings(of queue: QueueName) async throws -> QueueSettings {
        let settings = try await inner.settings(of: queue)
        remember(settings.partitions, of: queue)
        return settings
    }

    /// In the order that never leaves a message where nobody reads it: the dead-letter queue's
    /// partitions first (a queue that dead-letters, `maxReceiveCount`, gives its dead-letter queue
    /// at least as many partitions, so that its dead letters are read and redriven whole; only that
    /// first level, whose name the caller's access was checked for), then partitions 1..., so that
    /// a replica that reads the new count finds each of them configured, and last the queue
    /// itself, which holds the count. The backends refuse a smaller count where it is stored, so
    /// two concurrent changes cannot lower it either.
    public func updateSettings(_ settings: QueueSettings, of queue: QueueName) async throws {
        let current = try await inner.settings(of: queue).partitions
        guard settings.partitions >= current else { throw QueueError.partitionsShrink(queue, current: current) }
        if settings.partitions > 1, settings.maxReceiveCount != nil {
            let deadLetterQueue = settings.deadLetterQueue(of: queue)
            var its = try await inner.settings(of: deadLetterQueue)
            if its.partitions < settings.partitions {
                let before = its.partitions
                its.partitions = settings.partitions
                try await configurePartitions(its, of: deadLetterQueue, current: before)
            }
        }
        try await configurePartitions(settings, of: queue, current: current)
    }

    /// Partitions 1... of `queue`, then `queue` with the count.
    ///
    /// When a new partition would pass `MAX_QUEUES`, the partitions this change added are deleted
    /// again (they are empty: nothing reads or sends past the stored count, which was not raised),
    /// unless another change raised the count meanwhile and now owns them, and the error names the
    /// queue rather than a partition.
    private func configurePartitions(_ settings: QueueSettings, of queue: QueueName, current: Int) async throws {
        var configured = 1
        do {
            for index in 1..<max(settings.partitions, 1) {
                let partition = queue.partition(index)
                var own = settings
                own.partitions = 1
                own.deadLetterQueue = settings.deadLetterQueue(of: partition)
                try await inner.updateSettings(own, of: partition)
                configured = index + 1
            }
            // A new queue itself may be the one past the limit.
            try await inner.updateSettings(settings, of: queue)
        } catch let error as QueueError where error.kind == .tooManyQueues && settings.partitions > 1 {
            if let stored = try? await partitions(of: queue, fresh: true), stored <= current {
                for index in (max(current, 1)..<max(configured, current)).reversed() { _ = try? await inner.delete(queue.partition(index)) }
            }
            throw QueueError.tooManyQueues(forPartitionsOf: queue, partitions: settings.partitions)
        }
        remember(settings.partitions, of: queue)
    }

    // MARK: Figures and management

    /// Runs `body` on every partition of `queue` (read now), concurrently, results in partition order.
    private func eachPartition<T: Sendable>(of queue: QueueName, _ body: @escaping @Sendable (QueueName) async throws -> T) async throws -> [T] {
        let count = try await partitions(of: queue, fresh: true)
        if count == 1 { return [try await body(queue)] }
        return try await withThrowingTaskGroup(of: (Int, T).self) { group in
            for index in 0..<count {
                group.addTask { (index, try await body(queue.partition(index))) }
            }
            var results: [(Int, T)] = []
            for try await result in group { results.append(result) }
            return results.sorted { $0.0 < $1.0 }.map(\.1)
        }
    }

    public func stats(of queue: QueueName) async throws -> QueueStats {
        let inner = self.inner
        let parts = try await eachPartition(of: queue) { try await inner.stats(of: $0) }
        guard parts.count > 1 else { return parts[0] }
        var total = QueueStats()
        for part in parts {
            total.ready += part.ready
            total.inFlight += part.inFlight
            total.delayed += part.delayed
            total.deadLetterReady += part.deadLetterReady
            if let age = part.oldestReadyAgeMilliseconds { total.oldestReadyAgeMilliseconds = max(total.oldestReadyAgeMilliseconds ?? 0, age) }
            total.totals.add(part.totals)
            total.lastMinute.add(part.lastMinute)
        }
        return total
    }

    /// Queues by name, a partitioned queue once with its partitions' figures summed.
    public func queues() async throws -> [QueueSummary] {
        var byQueue: [QueueName: QueueSummary] = [:]
        for part in try await inner.queues() {
            let name = part.name.logical
            var summary = byQueue[name] ?? QueueSummary(name: name, ready: 0, inFlight: 0, delayed: 0)
            summary.ready += part.ready
            summary.inFlight += part.inFlight
            summary.delayed += part.delayed
            byQueue[name] = summary
        }
        return byQueue.values.sorted { $0.name < $1.name }
    }

    /// A partitioned queue has no one order: the partitions' first messages merged by priority,
    /// then age.
    public func peek(_ queue: QueueName, limit: Int, maximumBytes: Int) async throws -> [QueueMessage] {
        let inner = self.inner
        let parts = try await eachPartition(of: queue) { try await inner.peek($0, limit: limit, maximumBytes: maximumBytes) }
        guard parts.count > 1 else { return parts[0] }
        let merged = parts.joined().sorted {
            ($0.priority, -$0.enqueuedAtMilliseconds) > ($1.priority, -$1.enqueuedAtMilliseconds)
        }
        var (peeked, bytes) = ([QueueMessage](), 0)
        for message in merged {
            guard peeked.count < limit, peeked.isEmpty || bytes + message.body.readableBytes <= maximumBytes else { break }
            bytes += message.body.readableBytes
            peeked.append(message)
        }
        return peeked
    }

    /// Every partition is searched (an id does not say which holds it).
    public func lookUp(_ id: String, in queue: QueueName) async throws -> MessageLookup {
        let inner = self.inner
        var searchedAll = true
        for lookup in try await eachPartition(of: queue, { try await inner.lookUp(id, in: $0) }) {
            switch lookup {
            case .found: return lookup
            case .notFound(let all): searchedAll = searchedAll && all
            }
        }
        return .notFound(searchedAll: searchedAll)
    }

    /// A partitioned queue's history is kept under its name (partition 0), of its summed figures.
    public func recordHistory(_ sample: QueueHistorySample, of queue: QueueName, interval: Duration) async throws {
        try await inner.recordHistory(sample, of: queue, interval: interval)
    }

    public func history(of queue: QueueName) async throws -> [QueueHistorySample] { try await inner.history(of: queue) }

    public func takeBuriedPayloads(max: Int) async throws -> [String] { try await inner.takeBuriedPayloads(max: max) }

    public func adjustPayloadReferences(of id: String, by delta: Int, keepFor: Duration) async throws -> Int? {
        try await inner.adjustPayloadReferences(of: id, by: delta, keepFor: keepFor)
    }

    @discardableResult
    public func purge(_ queue: QueueName) async throws -> Int {
        let inner = self.inner
        return try await eachPartition(of: queue) { try await inner.purge($0) }.reduce(0, +)
    }

    /// Partitions 1... first, then the queue that holds their count: a delete cut short leaves a
    /// queue whose remaining partitions are still read.
    @discardableResult
    public func delete(_ queue: QueueName) async throws -> Bool {
        let count = try await partitions(of: queue, fresh: true)
        for index in (1..<max(count, 1)).reversed() { try await inner.delete(queue.partition(index)) }
        let existed = try await inner.delete(queue)
        forget(queue)
        return existed
    }

    /// Partition by partition from the next in turn, each from its own dead-letter partition.
    public func redrive(into queue: QueueName, max: Int) async throws -> Int {
        let count = try await partitions(of: queue)
        if count == 1 { return try await inner.redrive(into: queue, max: max) }
        var moved = 0
        for partition in rotation(count, turn: receiveTurn) where moved < max {
            moved += try await inner.redrive(into: queue.partition(partition), max: max - moved)
        }
        return moved
    }

    public func health() async -> BackendHealth { await inner.health() }

    public func isKnownEmpty(_ queue: QueueName) -> Bool { inner.isKnownEmpty(queue) }
}

extension QueueCounters {
    mutating func add(_ other: QueueCounters) {
        enqueued += other.enqueued
        delivered += other.delivered
        acknowledged += other.acknowledged
        retried += other.retried
        deadLettered += other.deadLettered
        expired += other.expired
    }
}
