import Logging
import NIOCore
import ServiceLifecycle
import SkiffQueue
import SkiffRedis
import SkiffSupport
import Synchronization

/// Long-poll waiting across replicas: waiters register, one claim pass per queue serves them,
/// and a notification on the queue's channel (or the subscriber's reconnect) starts the next pass.
extension RedisQueueBackend {
    // MARK: Waiting

    func prepareToWait(on queue: QueueName, quietSince token: WakeToken?) async {
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
    func kick(_ queue: QueueName) {
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

    func runPasses(_ queue: QueueName) async {
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
    func claimPass(_ queue: QueueName) async {
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

    func subscriberConnectionChanged(_ connected: Bool) {
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
}
