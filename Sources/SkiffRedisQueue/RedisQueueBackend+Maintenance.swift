import Logging
import NIOCore
import ServiceLifecycle
import SkiffQueue
import SkiffRedis
import SkiffSupport
import Synchronization

/// The service lifecycle and the sweeps: recovering claims of crashed replicas, promoting due
/// messages, expiring old ones.
extension RedisQueueBackend {
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
            if clustered {
                // Topics on a Redis Cluster: forwarding what publishing replicas left behind, in
                // a loop of its own so that a shard that does not answer holds up no other sweep.
                group.addTask {
                    await cancelWhenGracefulShutdown {
                        while !Task.isCancelled {
                            try? await Task.sleep(for: self.configuration.sweepInterval)
                            if Task.isCancelled { break }
                            await self.forwardTopicLog()
                            await self.forgetSettledCopies()
                        }
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
        await registerCreatedQueues()
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
    func sweep(
        _ index: String,
        with script: RedisScript,
        _ arguments: [RedisArgument] = [],
        result: (RedisValue) -> (handled: Int, more: Bool) = { (Int($0.integer ?? 0), false) }
    ) async -> Int {
        var due: [RedisValue] = []
        do {
            if clustered {
                // Every slot that holds queues has its own indexes: one read per node for all of its slots.
                due = try await forEachNode { bases in
                    try await self.client.evaluate(
                        RedisQueueScripts.dueSlots,
                        keys: [bases[0]],
                        arguments: [.string(index), .integer(100)] + bases.map { .string($0) }
                    ).array ?? []
                }
            } else {
                due = try await run(RedisQueueScripts.dueQueues, on: nil, [.string(index), .integer(100)]).array ?? []
            }
        } catch {
            logger.debug("sweep skipped", metadata: ["redis.script": "\(script.name)", "error": "\(error)"])
            return 0
        }
        var total = 0
        for name in due {
            guard let raw = name.string, let queue = QueueName(stored: raw) else { continue }
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

    /// Cluster: `body` once per node with the index bases of the slots it serves that hold
    /// queues (concurrently), the answers concatenated. When a node's run fails (a slot moved
    /// away or is migrating, the node is failing over), the slot map is read again and that
    /// node's slots are asked one by one instead, each routed by its own slot (so `MOVED` and
    /// `ASK` are followed): one node in trouble never holds up the sweep of the others.
    func forEachNode<T: Sendable>(_ body: @escaping @Sendable ([String]) async throws -> [T]) async throws -> [T] {
        let groups = try await client.slotsByNode(try await slotsInUse()).filter { !$0.isEmpty }
        let (prefix, client, logger) = (self.prefix, self.client, self.logger)
        return await withTaskGroup(of: [T].self) { group in
            for slots in groups {
                group.addTask {
                    let bases = slots.map { RedisQueueKeys.indexBase(prefix: prefix, slot: $0) }
                    do {
                        return try await body(bases)
                    } catch {
                        logger.debug("a node's sweep read failed; asking its slots one by one", metadata: ["error": "\(error)"])
                        await client.refreshClusterMap()
                        var results: [T] = []
                        for base in bases {
                            do { results += try await body([base]) } catch { continue }
                        }
                        return results
                    }
                }
            }
            var results: [T] = []
            while let answer = await group.next() { results += answer }
            return results
        }
    }

    /// Cluster: dead-letter queues a script created in its slot (`<slot>:unregistered`) join the
    /// global registry that counts queues against `MAX_QUEUES`; they leave the slot's list only
    /// once registered, so a replica that stops half-way leaves them for the next round.
    func registerCreatedQueues() async {
        guard clustered else { return }
        let registry = RedisQueueKeys.queueRegistry(prefix: prefix)
        do {
            let pairs = try await forEachNode { bases in
                try await self.client.evaluate(RedisQueueScripts.unregistered, keys: [bases[0]], arguments: bases.map { .string($0) }).array ?? []
            }.compactMap(\.string)
            guard !pairs.isEmpty else { return }
            var bySlot: [String: [String]] = [:]
            for index in stride(from: 0, to: pairs.count - 1, by: 2) { bySlot[pairs[index], default: []].append(pairs[index + 1]) }
            _ = try await client.send(RedisCommand("SADD", [.string(registry)] + bySlot.values.joined().map { .string($0) }), slotKey: registry)
            for (base, names) in bySlot {
                let pending = base + ":unregistered"
                _ = try await client.send(RedisCommand("SREM", [.string(pending)] + names.map { .string($0) }), slotKey: pending)
            }
        } catch {
            logger.debug("dead-letter queue registration deferred", metadata: ["error": "\(error)"])
        }
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
    static func handledAndMore(_ answer: RedisValue) -> (handled: Int, more: Bool) {
        let values = answer.array ?? []
        return (Int(values.first?.integer ?? 0), (values.count > 1 ? values[1].integer : 0) == 1)
    }
}
