import Logging
import NIOCore
import ServiceLifecycle
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
    private let scriptHashes = Mutex<[String: String]>([:])
    private let healthState = Mutex<(connected: Bool, lastError: String?)>((false, nil))

    public init(configuration: RedisConfiguration, eventLoopGroup: any EventLoopGroup, logger: Logger) {
        self.configuration = configuration
        self.eventLoopGroup = eventLoopGroup
        self.logger = logger
        self.pool = RedisConnectionPool(configuration: configuration, eventLoopGroup: eventLoopGroup, logger: logger)
    }

    /// Sends a command on a shared connection with the configured command deadline.
    public func send(_ command: RedisCommand) async throws -> RedisValue {
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
        try await pool.withBlockingConnection { connection in
            try await connection.send(command, timeout: serverTimeout + configuration.blockingMargin, isBlocking: true)
        }
    }

    /// Runs a script by its SHA1, loading it on first use and again after `NOSCRIPT`.
    public func evaluate(_ script: RedisScript, keys: [String], arguments: [RedisArgument]) async throws -> RedisValue {
        var commandArguments: [RedisArgument] = []
        commandArguments.reserveCapacity(keys.count + arguments.count + 2)
        commandArguments.append(.string(""))
        commandArguments.append(.integer(Int64(keys.count)))
        for key in keys { commandArguments.append(.string(key)) }
        commandArguments.append(contentsOf: arguments)

        let knownHash = scriptHashes.withLock { $0[script.source] }
        if let knownHash {
            commandArguments[0] = .string(knownHash)
            do {
                return try await send(RedisCommand("EVALSHA", commandArguments))
            } catch let error as RedisServerError where error.isNoScript {
                logger.info("redis script cache was emptied; reloading", metadata: ["redis.script": "\(script.name)"])
            }
        }
        // EVAL both runs the script and caches it; SCRIPT LOAD gives the hash for next time.
        let hash = try await send("SCRIPT", "LOAD", .string(script.source))
        if let hash = hash.string {
            scriptHashes.withLock { $0[script.source] = hash }
            commandArguments[0] = .string(hash)
            do {
                return try await send(RedisCommand("EVALSHA", commandArguments))
            } catch let error as RedisServerError where error.isNoScript {
                // Flushed between the two commands: EVAL cannot miss.
            }
        }
        commandArguments[0] = .string(script.source)
        return try await send(RedisCommand("EVAL", commandArguments))
    }

    /// A pub/sub subscriber on its own connection, sharing this client's configuration.
    public func makeSubscriber(
        onMessage: @escaping @Sendable (_ channel: String, _ payload: ByteBuffer) -> Void,
        onConnectionChange: @escaping @Sendable (_ connected: Bool) -> Void
    ) -> RedisSubscriber {
        RedisSubscriber(
            configuration: configuration,
            eventLoopGroup: eventLoopGroup,
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

    /// Health-checks every second until graceful shutdown, then closes the pool.
    public func run() async throws {
        await checkHealth()
        await cancelWhenGracefulShutdown {
            while !Task.isCancelled {
                try? await Task.sleep(for: .seconds(1))
                if Task.isCancelled { break }
                await self.checkHealth()
            }
        }
        pool.close()
    }

    public func close() {
        pool.close()
    }
}
