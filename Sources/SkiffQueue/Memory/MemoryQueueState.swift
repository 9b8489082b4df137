import NIOCore

// MARK: - Stored state

extension MemoryQueueBackend {
    struct StoredMessage {
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
        var traceContext: MessageTraceContext?

        /// What the message adds to a batch's byte limit: its body and its trace context, as
        /// Redis counts its envelope.
        var batchBytes: Int { body.readableBytes + (traceContext?.stored.utf8.count ?? 0) }

        var snapshot: QueueMessage {
            QueueMessage(
                id: id,
                body: body,
                enqueuedAtMilliseconds: enqueuedAtMilliseconds,
                receiveCount: receiveCount,
                priority: priority,
                lastError: lastError,
                deadLetter: deadLetter,
                traceContext: traceContext
            )
        }
    }

    struct Claim {
        var message: StoredMessage
        var leaseExpiry: ContinuousClock.Instant
        var isAcknowledgedMode: Bool
    }

    /// One lease to check when it ends. A renewed lease leaves its old entry behind; an entry whose
    /// claim has moved on is skipped when it comes up.
    struct LeaseEntry: Comparable {
        let expiry: ContinuousClock.Instant
        let messageID: String
        let claimToken: Int

        static func < (lhs: Self, rhs: Self) -> Bool { lhs.expiry < rhs.expiry }
        static func == (lhs: Self, rhs: Self) -> Bool {
            lhs.expiry == rhs.expiry && lhs.messageID == rhs.messageID && lhs.claimToken == rhs.claimToken
        }
    }

    struct DelayedMessage: Comparable {
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

    struct StoredIdempotencyKey {
        let sentAtMilliseconds: Int64
        let messages: [SentMessage]
    }

    struct QueueState {
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
        /// Ids of messages deleted for good (expired) whose bodies the payload store still holds.
        var buried: [String] = []

        var effectiveSettings: QueueSettings { settings ?? QueueSettings() }
        var readyCount: Int { ready.reduce(0) { $0 + $1.count } }
        var hasReadyMessages: Bool { ready.contains { !$0.isEmpty } }
        /// What `maxDepth` limits.
        var depth: Int { readyCount + inFlight.count + delayed.count }

        /// Mutates in place (through `Dictionary`'s subscript), so the buffers are never copied.
        mutating func modify<Result>(_ body: (inout QueueState) throws -> Result) rethrows -> Result {
            try body(&self)
        }

        /// A new message at the tail of its priority, or delayed; the caller counts it.
        mutating func enqueue(
            id: String, body: ByteBuffer, priority: Int, delayMilliseconds delay: Int64, at now: Int64, traceContext: MessageTraceContext? = nil
        ) {
            sequence += 1
            var message = StoredMessage(sequence: sequence, id: id, body: body, enqueuedAtMilliseconds: now, priority: priority)
            message.traceContext = traceContext
            if delay > 0 {
                delayed.push(DelayedMessage(dueAtMilliseconds: now + delay, message: message, isReturning: false))
            } else {
                ready[message.priority].append(message)
            }
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
        /// before it (as the Redis backend's `requeue`; at most 1000 of them are looked at).
        ///
        /// O(those messages), whatever the queue's depth: they are taken off the head and put back
        /// in front of it. `CircularBuffer.insert(_:at:)` would rebuild the whole buffer, and a
        /// queue of two million messages then spent seconds per release under the state lock.
        mutating func requeueAtHead(_ message: StoredMessage) {
            let priority = message.priority
            var ahead: [StoredMessage] = []
            while ahead.count < 1000, let first = ready[priority].first, first.sequence < message.sequence {
                ahead.append(ready[priority].removeFirst())
            }
            ready[priority].prepend(message)
            for earlier in ahead.reversed() { ready[priority].prepend(earlier) }
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
                    recordExpiry(of: next.message, at: now)
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
                    recordExpiry(of: head, at: now)
                }
            }
        }

        /// A message deleted for good by its retention: counted, and its body, if the payload store
        /// holds it, buried (``MemoryQueueBackend/takeBuriedPayloads(max:)``).
        mutating func recordExpiry(of message: StoredMessage, at now: Int64) {
            counters.record(\.expired, 1, at: now)
            if MessageID.isOffloaded(message.id) { buried.append(message.id) }
        }

        /// The ids of every message this queue holds whose body the payload store keeps.
        var offloadedIDs: [String] {
            var ids = ready.flatMap { $0.filter { MessageID.isOffloaded($0.id) }.map(\.id) }
            ids += inFlight.keys.filter { MessageID.isOffloaded($0) }
            delayed.forEach { if MessageID.isOffloaded($0.message.id) { ids.append($0.message.id) } }
            return ids
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
    struct Counters {
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

    struct State {
        var queues: [QueueName: QueueState] = [:]
        /// Each queue's samples, oldest first (``QueueBackend/recordHistory(_:of:interval:)``).
        var histories: [QueueName: CircularBuffer<QueueHistorySample>] = [:]
        /// Ids of purged and deleted messages whose bodies the payload store still holds (expired
        /// ones wait in their queue's ``QueueState/buried``).
        var graveyard: [String] = []
        /// Counts of the messages sharing a payload object, by message id, with the wall-clock
        /// millisecond they are forgotten at (``QueueBackend/adjustPayloadReferences(of:by:keepFor:)``).
        var payloadReferences: [String: (count: Int, until: Int64)] = [:]
        /// When ``payloadReferences`` holds this many, the expired go (then twice the rest, at least 10 000).
        var payloadReferencesSweepAt = 10_000
        var topics: [TopicName: TopicState] = [:]
        /// Every topic's version comes from here (``TopicSubscriptions/version``).
        var topicVersionClock: Int64 = 0
        /// Raised whenever a push subscription is stored or deleted (``TopicStore/pushSubscriptionsVersion()``).
        var pushVersionClock: Int64 = 0
        var isShuttingDown = false
    }
}
