public import Logging
public import Metrics
public import NIOCore
public import ServiceLifecycle
import SkiffSupport
import Synchronization
public import Tracing

/// What the client knows about Redis right now.
public struct RedisHealth: Sendable, Equatable {
    public var isConnected: Bool
    public var lastError: String?
    public var openConnections: Int
    public var reconnects: Int
}

/// The async Redis client the rest of Skiff uses: pipelined commands over a small pool, scripts,
/// blocking commands on dedicated connections, and a background health check that also drives
/// reconnection while nothing else is talking to Redis.
///
/// On a Redis Cluster (``RedisConfiguration/clusterSeeds``) every command goes to the primary of
/// its key's slot (a script's: its first key's), with a pool per node. A `MOVED` reply updates the
/// slot map and the command goes on to the new owner; `ASK` sends it once to the migration target
/// after `ASKING`; `TRYAGAIN` and `CLUSTERDOWN` wait a little and retry; a node that cannot be
/// reached makes the client read the map again (a failover promotes its replica) and retry. All of
/// these happen before the command ran, so they are retried within the command's deadline
/// whatever the command; a command whose connection broke after it was written is never sent
/// again (it may have run), as on a single Redis.
public final class RedisClient: Sendable, Service {
    public let configuration: RedisConfiguration
    /// The pool of a single Redis; on a cluster, the first seed's (the router keeps one per node).
    public let pool: RedisConnectionPool
    /// Set on a cluster.
    let router: ClusterRouter?
    private let eventLoopGroup: any EventLoopGroup
    private let logger: Logger
    /// Script name → SHA1 from `SCRIPT LOAD` (names are unique; hashing the source on every call
    /// would cost more than the command).
    private let scriptHashes = Mutex<[String: String]>([:])
    private let healthState = Mutex<(connected: Bool, lastError: String?)>((false, nil))
    private let metrics: RedisMetrics
    /// With tracing on: a client span per command sent while a traced request is current.
    private let tracer: (any Tracer)?

    /// - Parameter metricsFactory: where command latencies, pool size and reconnects are recorded
    ///   (see `RedisMetrics`); the global swift-metrics factory unless given.
    /// - Parameter tracer: where the commands' spans go (tracing on); `nil`: no spans.
    public init(
        configuration: RedisConfiguration,
        eventLoopGroup: any EventLoopGroup,
        logger: Logger,
        metricsFactory: any MetricsFactory = MetricsSystem.factory,
        tracer: (any Tracer)? = nil
    ) {
        self.tracer = tracer
        self.configuration = configuration
        self.eventLoopGroup = eventLoopGroup
        self.logger = logger
        self.metrics = RedisMetrics(factory: metricsFactory)
        if configuration.isCluster {
            let router = ClusterRouter(configuration: configuration, eventLoopGroup: eventLoopGroup, logger: logger, metrics: metrics)
            self.router = router
            self.pool = router.seedPool
        } else {
            self.router = nil
            self.pool = RedisConnectionPool(configuration: configuration, eventLoopGroup: eventLoopGroup, logger: logger, metrics: metrics)
        }
    }

    /// Sends a command on a shared connection with the configured command deadline. On a
    /// cluster, `slotKey` routes it (any key of the command); without one it goes to any primary.
    public func send(_ command: RedisCommand, slotKey: String? = nil) async throws -> RedisValue {
        try await send(command, slotKey: slotKey, script: nil)
    }

    func send(_ command: RedisCommand, slotKey: String?, script: RedisScript?) async throws -> RedisValue {
        // Spans only inside a traced request (its context is current): the maintenance rounds and
        // sweeps would otherwise start a trace per command.
        guard let tracer, let parent = ServiceContext.current else { return try await sendUntraced(command, slotKey: slotKey, script: script) }
        let span = tracer.startSpan(script.map { "\(command.name) \($0.name)" } ?? command.name, context: parent, ofKind: .client)
        defer { span.end() }
        span.updateAttributes { attributes in
            attributes["db.system.name"] = "redis"
            attributes["db.operation.name"] = command.name
            if let script { attributes["db.stored_procedure.name"] = script.name }
        }
        do {
            return try await sendUntraced(command, slotKey: slotKey, script: script)
        } catch {
            span.recordError(error)
            span.setStatus(SpanStatus(code: .error))
            throw error
        }
    }

    private func sendUntraced(_ command: RedisCommand, slotKey: String?, script: RedisScript?) async throws -> RedisValue {
        let start = ContinuousClock.now
        defer { metrics.recordCommand(command.name, since: start) }
        do {
            guard let router else {
                let connection = try await pool.multiplexedConnection()
                return try await connection.send(command, timeout: configuration.commandTimeout)
            }
            return try await routed(router, slotKey: slotKey, deadline: start + configuration.commandTimeout, script: script) { connection, remaining in
                try await connection.send(command, timeout: remaining)
            }
        } catch let error as RedisClientError where error.isConnectivityFailure {
            recordFailure(error)
            throw error
        }
    }

    /// Runs `body` on a connection to the node that serves `slotKey`'s slot, following the
    /// cluster's redirections until `deadline` (see the type's documentation). Giving up on a
    /// redirection, a `TRYAGAIN` or a `CLUSTERDOWN` throws ``RedisClientError/unavailable(_:)``:
    /// none of them means the command ran, so callers may treat it like a refused connection.
    ///
    /// A script never follows `ASK`: on the migration target it would see only the keys moved so
    /// far. It waits for the migration to finish (`MOVED`) instead, like `TRYAGAIN`. (The queue
    /// scripts declare keys that never exist, so a migrating slot always answers them `ASK`
    /// before they start: no script runs half-way through a migration.)
    func routed<T: Sendable>(
        _ router: ClusterRouter,
        slotKey: String?,
        deadline: ContinuousClock.Instant,
        script: RedisScript? = nil,
        _ body: (RedisConnection, Duration) async throws -> T
    ) async throws -> T {
        let slot = slotKey.map(ClusterSlot.of)
        var asking: ClusterNodeAddress?
        var attempt = 0
        while true {
            attempt += 1
            let node: ClusterNodeAddress
            if let target = asking {
                node = target
            } else if let slot {
                node = try await router.primary(for: slot)
            } else {
                node = try await router.anyPrimary()
            }
            let remaining = deadline - .now
            // Nothing was sent for this attempt: the command did not run.
            guard remaining > .zero else { throw RedisClientError.unavailable("the Redis Cluster kept redirecting until the deadline") }
            do {
                let connection = try await router.pool(at: node).multiplexedConnection()
                if asking != nil {
                    asking = nil
                    // ASKING lets the next command on this connection reach an importing slot.
                    _ = try await connection.send(RedisCommand("ASKING"), timeout: remaining)
                }
                return try await body(connection, remaining)
            } catch let error as RedisServerError {
                guard let redirection = ClusterRedirection(error, answeredBy: node.host) else { throw error }
                let giveUp = RedisClientError.unavailable("Redis Cluster: \(error.message)")
                guard attempt < 64 else { throw giveUp }
                switch redirection {
                case .moved(let slot, let address):
                    router.moved(slot: slot, to: address)
                case .ask(_, let address) where script == nil:
                    asking = address
                case .ask, .tryAgain:
                    try await Self.pause(attempt: attempt, until: deadline, failure: giveUp)
                }
            } catch let error as RedisClientError where error == .unavailable("") {
                // No connection could be made, so nothing was sent: the node may be gone (a
                // failover). Read the map again and retry while the deadline allows.
                router.nodeFailed(node)
                try await Self.pause(attempt: attempt, until: deadline, failure: error)
                _ = try? await router.refresh(minimumInterval: .milliseconds(50))
            }
        }
    }

    /// Cluster: `slots` grouped by the primary that serves them, as the client's map has it (read
    /// first if there is none); `[slots]` on a single Redis. For work that reads many slots of
    /// one node in one script run.
    public func slotsByNode(_ slots: [Int]) async throws -> [[Int]] {
        guard let router else { return [slots] }
        var groups: [ClusterNodeAddress: [Int]] = [:]
        for slot in slots { groups[try await router.primary(for: slot), default: []].append(slot) }
        return Array(groups.values)
    }

    /// Cluster: reads the slot map again now (after a script found a slot gone from its node).
    public func refreshClusterMap() async {
        _ = try? await router?.refresh(minimumInterval: .milliseconds(100))
    }

    /// A short wait before a retry (10 ms doubling to 200 ms), never past the deadline.
    private static func pause(attempt: Int, until deadline: ContinuousClock.Instant, failure: (any Error)? = nil) async throws {
        let wait = Duration.milliseconds(min(200, 10 << min(attempt, 5)))
        guard ContinuousClock.now + wait < deadline else { throw failure ?? RedisClientError.timeout }
        try await Task.sleep(for: wait)
    }

    public func send(_ name: String, _ arguments: RedisArgument...) async throws -> RedisValue {
        try await send(RedisCommand(name, arguments))
    }

    /// Runs a blocking command (`BLPOP`, `BLMOVE`, `XREAD BLOCK`...) on a dedicated connection.
    ///
    /// - Parameter serverTimeout: the timeout the command itself gives the server. The client-side
    ///   deadline is that plus ``RedisConfiguration/blockingMargin``, so the server always answers
    ///   first when it is healthy. On timeout or cancellation the connection is closed, never reused.
    public func blocking(_ command: RedisCommand, serverTimeout: Duration, slotKey: String? = nil) async throws -> RedisValue {
        let start = ContinuousClock.now
        defer { metrics.recordCommand(command.name, since: start) }
        var blockingPool = pool
        if let router {
            let node = if let slotKey { try await router.primary(for: ClusterSlot.of(slotKey)) } else { try await router.anyPrimary() }
            blockingPool = try router.pool(at: node)
        }
        return try await blockingPool.withBlockingConnection { connection in
            try await connection.send(command, timeout: serverTimeout + configuration.blockingMargin, isBlocking: true)
        }
    }

    /// Runs a script by its SHA1, loading it on first use and again after `NOSCRIPT`. On a
    /// cluster it runs on the primary of its first key's slot.
    public func evaluate(_ script: RedisScript, keys: [String], arguments: [RedisArgument]) async throws -> RedisValue {
        let slotKey = keys.first
        if let hash = scriptHashes.withLock({ $0[script.name] }) {
            do {
                return try await send(Self.scriptCommand("EVALSHA", hash, keys: keys, arguments: arguments), slotKey: slotKey, script: script)
            } catch let error as RedisServerError where error.isNoScript {
                logger.info("redis script cache was emptied; reloading", metadata: ["redis.script": "\(script.name)"])
            }
        }
        if let hash = try await load(script, slotKey: slotKey) {
            do {
                return try await send(Self.scriptCommand("EVALSHA", hash, keys: keys, arguments: arguments), slotKey: slotKey, script: script)
            } catch let error as RedisServerError where error.isNoScript {
                // Flushed between the two commands (or, on a cluster, the slot moved to a node
                // that has not loaded it): EVAL cannot miss.
            }
        }
        return try await send(Self.scriptCommand("EVAL", script.source, keys: keys, arguments: arguments), slotKey: slotKey, script: script)
    }

    /// Runs a script, then `WAIT replicas timeout` on the same connection, so the answer says how
    /// many replicas hold the script's writes (Redis replicates asynchronously otherwise).
    ///
    /// - Returns: the script's reply and the number of replicas that acknowledged it in time.
    public func evaluate(
        _ script: RedisScript,
        keys: [String],
        arguments: [RedisArgument],
        waitingForReplicas replicas: Int,
        timeout replicaTimeout: Duration
    ) async throws -> (RedisValue, acknowledgedReplicas: Int) {
        let hash: String
        if let known = scriptHashes.withLock({ $0[script.name] }) {
            hash = known
        } else if let loaded = try await load(script, slotKey: keys.first) {
            hash = loaded
        } else {
            throw RedisClientError.unexpectedReply("SCRIPT LOAD returned no hash")
        }
        let wait = RedisCommand("WAIT", .integer(Int64(replicas)), .integer(max(1, replicaTimeout.milliseconds)))
        for name in ["EVALSHA", "EVAL"] {
            let commands = [Self.scriptCommand(name, name == "EVALSHA" ? hash : script.source, keys: keys, arguments: arguments), wait]
            let start = ContinuousClock.now
            defer { metrics.recordCommand(name + "+WAIT", since: start) }
            let timeout = configuration.commandTimeout + replicaTimeout
            do {
                let results: [Result<RedisValue, any Error>]
                if let router {
                    results = try await routed(router, slotKey: keys.first, deadline: start + timeout, script: script) { connection, remaining in
                        let results = try await connection.sendPipelined(commands, timeout: remaining)
                        // A redirection of the script is thrown so that `routed` follows it.
                        if case .failure(let error as RedisServerError) = results[0], ClusterRedirection(error) != nil { throw error }
                        return results
                    }
                } else {
                    results = try await pool.multiplexedConnection().sendPipelined(commands, timeout: timeout)
                }
                let value = try results[0].get()
                return (value, Int(try results[1].get().integer ?? 0))
            } catch let error as RedisServerError where error.isNoScript && name == "EVALSHA" {
                continue
            } catch let error as RedisClientError where error.isConnectivityFailure {
                recordFailure(error)
                throw error
            }
        }
        throw RedisClientError.unexpectedReply("script could not be run")
    }

    /// `SCRIPT LOAD`s a script (on a cluster: on the node of `slotKey`) and remembers its hash,
    /// which is the same on every node.
    private func load(_ script: RedisScript, slotKey: String?) async throws -> String? {
        guard let hash = try await send(RedisCommand("SCRIPT", "LOAD", .string(script.source)), slotKey: slotKey).string else { return nil }
        scriptHashes.withLock { $0[script.name] = hash }
        return hash
    }

    private static func scriptCommand(_ name: String, _ scriptOrHash: String, keys: [String], arguments: [RedisArgument]) -> RedisCommand {
        var commandArguments: [RedisArgument] = []
        commandArguments.reserveCapacity(keys.count + arguments.count + 2)
        commandArguments.append(.string(scriptOrHash))
        commandArguments.append(.integer(Int64(keys.count)))
        for key in keys { commandArguments.append(.string(key)) }
        commandArguments.append(contentsOf: arguments)
        return RedisCommand(name, commandArguments)
    }

    /// A pub/sub subscriber on its own connection, sharing this client's configuration; its
    /// connection lives on `eventLoop` when one is given (its messages arrive there), else on one
    /// of the client's loops. On a cluster it is a sharded subscriber (`SSUBSCRIBE`, a connection
    /// per primary that serves a subscribed channel): publish with `SPUBLISH` for it to hear.
    public func makeSubscriber(
        on eventLoop: (any EventLoop)? = nil,
        onMessage: @escaping @Sendable (_ channel: String, _ payload: ByteBuffer) -> Void,
        onConnectionChange: @escaping @Sendable (_ connected: Bool) -> Void
    ) -> RedisSubscriber {
        RedisSubscriber(
            configuration: configuration,
            router: router,
            // An event loop is a group of one: every connection of the subscriber lives on it.
            eventLoopGroup: eventLoop ?? eventLoopGroup,
            logger: logger,
            onMessage: onMessage,
            onConnectionChange: onConnectionChange
        )
    }

    public var health: RedisHealth {
        let state = healthState.withLock { $0 }
        return RedisHealth(
            isConnected: state.connected,
            lastError: state.lastError,
            openConnections: router?.openConnections ?? pool.openConnections,
            reconnects: router?.reconnects ?? pool.reconnects
        )
    }

    /// Pings Redis now and records the outcome.
    @discardableResult
    ///
    /// On a cluster: healthy while the slot map can be read and some primary answers. One shard
    /// failing over fails only the requests for its slots (each with its own `503`); it does not
    /// make the whole replica unready, which would take every replica out of the load balancer.
    public func checkHealth() async -> Bool {
        do {
            if let router {
                let map = try await router.refresh(minimumInterval: .seconds(1))
                var answered = false
                for primary in map.primaries where !answered {
                    if let connection = try? await router.pool(at: primary).multiplexedConnection(),
                        (try? await connection.send(RedisCommand("PING"), timeout: configuration.commandTimeout)) != nil
                    {
                        answered = true
                    }
                }
                guard answered else { throw RedisClientError.unavailable("no primary of the Redis Cluster answers") }
            } else {
                _ = try await send("PING")
            }
            healthState.withLock { $0 = (true, nil) }
            return true
        } catch {
            healthState.withLock { $0 = (false, (error as? RedisClientError)?.detail ?? "\(error)") }
            return false
        }
    }

    /// A command failed for want of Redis: unhealthy until the next check succeeds (on a
    /// cluster only the health check decides, see ``checkHealth()``).
    private func recordFailure(_ error: any Error) {
        guard router == nil else { return }
        let reason = (error as? RedisClientError)?.detail ?? "\(error)"
        healthState.withLock { $0 = (false, reason) }
    }

    /// Health-checks every second until graceful shutdown, then closes the pool. Also refreshes
    /// the pool-size gauge.
    public func run() async throws {
        await checkHealth()
        metrics.openConnections.record(health.openConnections)
        await cancelWhenGracefulShutdown {
            while !Task.isCancelled {
                try? await Task.sleep(for: .seconds(1))
                if Task.isCancelled { break }
                await self.checkHealth()
                self.metrics.openConnections.record(self.health.openConnections)
            }
        }
        close()
    }

    public func close() {
        if let router { router.close() } else { pool.close() }
    }
}
