public import Logging
public import Metrics
public import NIOCore
public import ServiceLifecycle
import SkiffSupport
import Synchronization

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
public final class RedisClient: Sendable, Service {
    public let configuration: RedisConfiguration
    public let pool: RedisConnectionPool
    private let eventLoopGroup: any EventLoopGroup
    private let logger: Logger
    /// Script name → SHA1 from `SCRIPT LOAD` (names are unique; hashing the source on every call
    /// would cost more than the command).
    private let scriptHashes = Mutex<[String: String]>([:])
    private let healthState = Mutex<(connected: Bool, lastError: String?)>((false, nil))
    private let metrics: RedisMetrics

    /// - Parameter metricsFactory: where command latencies, pool size and reconnects are recorded
    ///   (see `RedisMetrics`); the global swift-metrics factory unless given.
    public init(
        configuration: RedisConfiguration,
        eventLoopGroup: any EventLoopGroup,
        logger: Logger,
        metricsFactory: any MetricsFactory = MetricsSystem.factory
    ) {
        self.configuration = configuration
        self.eventLoopGroup = eventLoopGroup
        self.logger = logger
        self.metrics = RedisMetrics(factory: metricsFactory)
        self.pool = RedisConnectionPool(configuration: configuration, eventLoopGroup: eventLoopGroup, logger: logger, metrics: metrics)
    }

    /// Sends a command on a shared connection with the configured command deadline.
    public func send(_ command: RedisCommand) async throws -> RedisValue {
        let start = ContinuousClock.now
        defer { metrics.recordCommand(command.name, since: start) }
        do {
            let connection = try await pool.multiplexedConnection()
            let value = try await connection.send(command, timeout: configuration.commandTimeout)
            return value
        } catch let error as RedisClientError where error.isConnectivityFailure {
            recordFailure(error)
            throw error
        }
    }

    public func send(_ name: String, _ arguments: RedisArgument...) async throws -> RedisValue {
        try await send(RedisCommand(name, arguments))
    }

    /// Runs a blocking command (`BLPOP`, `BLMOVE`, `XREAD BLOCK`...) on a dedicated connection.
    ///
    /// - Parameter serverTimeout: the timeout the command itself gives the server. The client-side
    ///   deadline is that plus ``RedisConfiguration/blockingMargin``, so the server always answers
    ///   first when it is healthy. On timeout or cancellation the connection is closed, never reused.
    public func blocking(_ command: RedisCommand, serverTimeout: Duration) async throws -> RedisValue {
        let start = ContinuousClock.now
        defer { metrics.recordCommand(command.name, since: start) }
        return try await pool.withBlockingConnection { connection in
            try await connection.send(command, timeout: serverTimeout + configuration.blockingMargin, isBlocking: true)
        }
    }

    /// Runs a script by its SHA1, loading it on first use and again after `NOSCRIPT`.
    public func evaluate(_ script: RedisScript, keys: [String], arguments: [RedisArgument]) async throws -> RedisValue {
        if let hash = scriptHashes.withLock({ $0[script.name] }) {
            do {
                return try await send(Self.scriptCommand("EVALSHA", hash, keys: keys, arguments: arguments))
            } catch let error as RedisServerError where error.isNoScript {
                logger.info("redis script cache was emptied; reloading", metadata: ["redis.script": "\(script.name)"])
            }
        }
        if let hash = try await load(script) {
            do {
                return try await send(Self.scriptCommand("EVALSHA", hash, keys: keys, arguments: arguments))
            } catch let error as RedisServerError where error.isNoScript {
                // Flushed between the two commands: EVAL cannot miss.
            }
        }
        return try await send(Self.scriptCommand("EVAL", script.source, keys: keys, arguments: arguments))
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
        } else if let loaded = try await load(script) {
            hash = loaded
        } else {
            throw RedisClientError.unexpectedReply("SCRIPT LOAD returned no hash")
        }
        let wait = RedisCommand("WAIT", .integer(Int64(replicas)), .integer(max(1, replicaTimeout.milliseconds)))
        for name in ["EVALSHA", "EVAL"] {
            let body = name == "EVALSHA" ? hash : script.source
            let start = ContinuousClock.now
            defer { metrics.recordCommand(name + "+WAIT", since: start) }
            do {
                let connection = try await pool.multiplexedConnection()
                let results = try await connection.sendPipelined(
                    [Self.scriptCommand(name, body, keys: keys, arguments: arguments), wait],
                    timeout: configuration.commandTimeout + replicaTimeout
                )
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

    /// `SCRIPT LOAD`s a script and remembers its hash.
    private func load(_ script: RedisScript) async throws -> String? {
        guard let hash = try await send("SCRIPT", "LOAD", .string(script.source)).string else { return nil }
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
    /// of the client's loops.
    public func makeSubscriber(
        on eventLoop: (any EventLoop)? = nil,
        onMessage: @escaping @Sendable (_ channel: String, _ payload: ByteBuffer) -> Void,
        onConnectionChange: @escaping @Sendable (_ connected: Bool) -> Void
    ) -> RedisSubscriber {
        RedisSubscriber(
            configuration: configuration,
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
            openConnections: pool.openConnections,
            reconnects: pool.reconnects
        )
    }

    /// Pings Redis now and records the outcome.
    @discardableResult
    public func checkHealth() async -> Bool {
        do {
            _ = try await send("PING")
            healthState.withLock { $0 = (true, nil) }
            return true
        } catch {
            recordFailure(error)
            return false
        }
    }

    private func recordFailure(_ error: any Error) {
        let reason = (error as? RedisClientError)?.detail ?? "\(error)"
        healthState.withLock { $0 = (false, reason) }
    }

    /// Health-checks every second until graceful shutdown, then closes the pool. Also refreshes
    /// the pool-size gauge.
    public func run() async throws {
        await checkHealth()
        metrics.openConnections.record(pool.openConnections)
        await cancelWhenGracefulShutdown {
            while !Task.isCancelled {
                try? await Task.sleep(for: .seconds(1))
                if Task.isCancelled { break }
                await self.checkHealth()
                self.metrics.openConnections.record(self.pool.openConnections)
            }
        }
        pool.close()
    }

    public func close() {
        pool.close()
    }
}
