import Logging
import NIOCore

extension MemoryQueueBackend {
    // The rules shared by the operations (all run under the lock).

    enum RetryDelay {
        /// 0: ready at once, at the head.
        case fixed(milliseconds: Int64)
        /// The queue's retry backoff after the message's receive count, with jitter.
        case backoff
    }

    /// Claims up to `max` messages from the heads of `queue`'s priorities, highest first.
    static func claim(
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
            if let maxBytes, !deliveries.isEmpty, let head = state.queues[queue]!.peekHead(), bytes + head.batchBytes > maxBytes {
                return ClaimedMessages(deliveries: deliveries, stoppedAtByteLimit: true)
            }
            state.queues[queue]!.modify { queueState in
                guard var message = queueState.popHead() else { return }
                message.receiveCount += 1
                message.claims += 1
                if message.firstReceivedAtMilliseconds == nil { message.firstReceivedAtMilliseconds = now }
                message.lastReceivedAtMilliseconds = now
                bytes += message.batchBytes
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
    static func prepareHead(of queue: QueueName, in state: inout State, now: Int64, wakes: inout Set<QueueName>) -> Bool {
        guard state.queues[queue] != nil else { return false }
        while true {
            let settings = state.queues[queue]!.effectiveSettings
            let outcome = state.queues[queue]!.modify { queueState -> (claimable: Bool, deadLetter: StoredMessage?) in
                _ = queueState.promoteDueMessages(at: now)
                guard let head = queueState.peekHead() else { return (false, nil) }
                if now - head.enqueuedAtMilliseconds >= settings.retentionMilliseconds {
                    _ = queueState.popHead()
                    queueState.recordExpiry(of: head, at: now)
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
    static func failedReceive(
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
            state.queues[queue]!.recordExpiry(of: message, at: now)
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
    static func deadLetter(_ message: StoredMessage, from queue: QueueName, in state: inout State, now: Int64, wakes: inout Set<QueueName>) {
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
}
