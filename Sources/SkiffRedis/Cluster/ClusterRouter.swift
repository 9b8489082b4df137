import Logging
import NIOCore
import Synchronization

/// The client's view of a Redis Cluster: the slot map, read from the seed nodes and refreshed
/// when a node redirects a command (`MOVED`) or cannot be reached (a failover), and one
/// connection pool per node. A refresh asks every known primary and the seeds in turn and takes
/// the first map that covers every slot; concurrent refreshes share one query.
final class ClusterRouter: Sendable {
    private struct State {
        var map: ClusterSlotMap?
        var pools: [ClusterNodeAddress: RedisConnectionPool] = [:]
        var refresh: Task<ClusterSlotMap, any Error>?
        /// Bumped by every map written, so an older refresh never overwrites a newer map.
        var generation: UInt64 = 0
        var lastRefresh: ContinuousClock.Instant?
        var isClosed = false
    }

    let configuration: RedisConfiguration
    private let eventLoopGroup: any EventLoopGroup
    private let logger: Logger
    private let metrics: RedisMetrics
    private let state = Mutex(State())

    /// The first seed's pool, made up front.
    let seedPool: RedisConnectionPool

    init(configuration: RedisConfiguration, eventLoopGroup: any EventLoopGroup, logger: Logger, metrics: RedisMetrics) {
        self.configuration = configuration
        self.eventLoopGroup = eventLoopGroup
        self.logger = logger
        self.metrics = metrics
        let seed = configuration.clusterSeeds[0]
        self.seedPool = RedisConnectionPool(configuration: configuration.node(seed), eventLoopGroup: eventLoopGroup, logger: logger, metrics: metrics)
        state.withLock { $0.pools[seed] = seedPool }
    }

    /// The pool of the node at `address` (made on first use).
    func pool(at address: ClusterNodeAddress) throws -> RedisConnectionPool {
        try state.withLock { state in
            if state.isClosed { throw RedisClientError.poolClosed }
            if let pool = state.pools[address] { return pool }
            let pool = RedisConnectionPool(configuration: configuration.node(address), eventLoopGroup: eventLoopGroup, logger: logger, metrics: metrics)
            state.pools[address] = pool
            return pool
        }
    }

    /// The primary that serves `slot`, reading the map first if there is none yet.
    func primary(for slot: Int) async throws -> ClusterNodeAddress {
        let known = state.withLock { $0.map?.primary(for: slot) }
        if let known { return known }
        let map = try await refresh()
        guard let primary = map.primary(for: slot) else { throw RedisClientError.unavailable("no node of the Redis Cluster serves slot \(slot)") }
        return primary
    }

    /// The primary that serves `slot` in the current map, without reading one (`nil`: no map yet,
    /// or no node serves the slot now).
    func knownPrimary(for slot: Int) -> ClusterNodeAddress? {
        state.withLock { $0.map?.primary(for: slot) }
    }

    /// Any primary (for commands without a key: `PING`, `SCRIPT LOAD` to one node).
    func anyPrimary() async throws -> ClusterNodeAddress {
        let known = state.withLock { $0.map?.primaries.first }
        if let known { return known }
        guard let first = try await refresh().primaries.first else { throw RedisClientError.unavailable("the Redis Cluster has no primary") }
        return first
    }

    /// Every primary of the current map.
    func primaries() async throws -> [ClusterNodeAddress] {
        if let known = state.withLock({ $0.map?.primaries }) { return known }
        return try await refresh().primaries
    }

    /// `MOVED`: the slot's owner is known at once; the rest of the map is read again in the
    /// background (a resharding or a failover usually moves more than one slot).
    func moved(slot: Int, to address: ClusterNodeAddress) {
        state.withLock { state in
            if state.map == nil { state.map = ClusterSlotMap() }
            state.map!.assign(slot...slot, to: address)
            state.generation &+= 1
        }
        refreshSoon()
    }

    /// A node could not be reached: read the map again (its replica may have been promoted).
    func nodeFailed(_ address: ClusterNodeAddress) {
        refreshSoon()
    }

    private func refreshSoon() {
        Task { _ = try? await self.refresh(minimumInterval: .milliseconds(100)) }
    }

    /// Reads the slot map (sharing a refresh in progress). With `minimumInterval`, a map read
    /// less than that long ago is kept.
    @discardableResult
    func refresh(minimumInterval: Duration = .zero) async throws -> ClusterSlotMap {
        enum Decision {
            case current(ClusterSlotMap)
            case wait(Task<ClusterSlotMap, any Error>)
        }
        let decision: Decision = try state.withLock { state in
            if state.isClosed { throw RedisClientError.poolClosed }
            if let running = state.refresh { return .wait(running) }
            if let map = state.map, let last = state.lastRefresh, ContinuousClock.now - last < minimumInterval { return .current(map) }
            let candidates = Self.candidates(map: state.map, seeds: configuration.clusterSeeds)
            let generation = state.generation
            // The task writes the map itself, unless something newer was written meanwhile (a
            // MOVED), and clears itself: waiters only read.
            let task = Task<ClusterSlotMap, any Error> {
                do {
                    let map = try await self.readMap(from: candidates)
                    let stale = self.state.withLock { state -> [RedisConnectionPool] in
                        state.refresh = nil
                        guard state.generation == generation else { return [] }
                        state.generation &+= 1
                        state.map = map
                        state.lastRefresh = .now
                        // Pools of nodes that left the cluster (not seeds) are closed.
                        let keep = Set(map.primaries + map.replicas.flatMap { $0 } + self.configuration.clusterSeeds)
                        let gone = state.pools.keys.filter { !keep.contains($0) }
                        return gone.compactMap { state.pools.removeValue(forKey: $0) }
                    }
                    for pool in stale { pool.close() }
                    return map
                } catch {
                    self.state.withLock { $0.refresh = nil }
                    throw error
                }
            }
            state.refresh = task
            return .wait(task)
        }
        let task: Task<ClusterSlotMap, any Error>
        switch decision {
        case .current(let map): return map
        case .wait(let running): task = running
        }
        return try await task.value
    }

    /// Known primaries first (they answer with the freshest view), then their replicas, then the seeds.
    private static func candidates(map: ClusterSlotMap?, seeds: [ClusterNodeAddress]) -> [ClusterNodeAddress] {
        var nodes: [ClusterNodeAddress] = []
        for node in (map?.primaries ?? []) + (map?.replicas.flatMap { $0 } ?? []) + seeds where !nodes.contains(node) { nodes.append(node) }
        return nodes
    }

    /// The first map that covers every slot; failing that (a shard with no primary for now),
    /// the most complete one, so that only the uncovered slots fail.
    private func readMap(from candidates: [ClusterNodeAddress]) async throws -> ClusterSlotMap {
        var failures: [String] = []
        var best: ClusterSlotMap?
        for node in candidates {
            do {
                let connection = try await pool(at: node).multiplexedConnection()
                let map: ClusterSlotMap
                do {
                    map = try ClusterSlotMap.fromShards(
                        try await connection.send(RedisCommand("CLUSTER", "SHARDS"), timeout: configuration.commandTimeout), tls: configuration.tls)
                } catch let error as RedisServerError where error.prefix == "ERR" {
                    // Before Redis 7: CLUSTER SLOTS.
                    map = try ClusterSlotMap.fromSlots(try await connection.send(RedisCommand("CLUSTER", "SLOTS"), timeout: configuration.commandTimeout))
                }
                guard map.unassignedSlots == 0 else {
                    failures.append("\(node): \(map.unassignedSlots) slots without a primary")
                    if map.unassignedSlots < ClusterSlot.count, map.unassignedSlots < best?.unassignedSlots ?? .max { best = map }
                    continue
                }
                return map
            } catch {
                failures.append("\(node): \(error)")
            }
        }
        if let best {
            logger.warning("redis cluster map is partial", metadata: ["redis.unassigned_slots": "\(best.unassignedSlots)"])
            return best
        }
        logger.warning("redis cluster map could not be read", metadata: ["error": "\(failures.joined(separator: "; "))"])
        throw RedisClientError.unavailable("Redis Cluster map: " + failures.joined(separator: "; "))
    }

    /// Open connections over every node.
    var openConnections: Int { state.withLock { $0.pools.values.reduce(0) { $0 + $1.openConnections } } }
    var reconnects: Int { state.withLock { $0.pools.values.reduce(0) { $0 + $1.reconnects } } }

    func close() {
        let pools = state.withLock { state in
            state.isClosed = true
            state.refresh?.cancel()
            return Array(state.pools.values)
        }
        for pool in pools { pool.close() }
    }
}
