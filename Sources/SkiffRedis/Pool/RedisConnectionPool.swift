public import Logging
public import Metrics
public import NIOCore
import SkiffSupport
import Synchronization

/// Keeps a few shared connections for pipelined commands and lends dedicated ones for blocking commands.
///
/// When Redis cannot be reached, a failed slot backs off exponentially (50 ms doubling to 2 s);
/// commands arriving meanwhile fail at once with ``RedisClientError/unavailable(_:)`` instead of
/// queueing, so callers can answer quickly. Reconnection is lazy: the next command (or the client's
/// health check) after the backoff tries again.
public final class RedisConnectionPool: Sendable {
    private typealias StateMachine = ConnectionPoolStateMachine<RedisConnection, Task<RedisConnection, any Error>>

    public let configuration: RedisConfiguration
    private let eventLoopGroup: any EventLoopGroup
    /// The event loop of each shared slot: slot `i` lives on loop `i % loops`, so every loop has a
    /// connection of its own when there are at least as many slots as loops.
    private let slotEventLoops: [any EventLoop]
    private let logger: Logger
    /// Every decision is the state machine's; this class runs the connects and closes it asks for.
    private let state: Mutex<StateMachine>
    private let reconnectCount = Atomic<Int>(0)
    private let metrics: RedisMetrics

    /// - Parameter metricsFactory: where reconnects are counted (`skiff_redis_reconnects_total`).
    public convenience init(
        configuration: RedisConfiguration,
        eventLoopGroup: any EventLoopGroup,
        logger: Logger,
        metricsFactory: any MetricsFactory = MetricsSystem.factory
    ) {
        self.init(configuration: configuration, eventLoopGroup: eventLoopGroup, logger: logger, metrics: RedisMetrics(factory: metricsFactory))
    }

    init(configuration: RedisConfiguration, eventLoopGroup: any EventLoopGroup, logger: Logger, metrics: RedisMetrics) {
        self.configuration = configuration
        self.eventLoopGroup = eventLoopGroup
        self.logger = logger
        self.metrics = metrics
        let slotCount = max(1, configuration.multiplexedConnections)
        let loops = Array(eventLoopGroup.makeIterator())
        self.slotEventLoops = (0..<slotCount).map { loops.isEmpty ? eventLoopGroup.next() : loops[$0 % loops.count] }
        self.state = Mutex(StateMachine(sharedSlots: slotCount, maximumBlocking: configuration.maxBlockingConnections))
    }

    /// Connections opened after the first successful one: a measure of instability.
    public var reconnects: Int { reconnectCount.load(ordering: .relaxed) }

    /// Open connections: shared ones plus blocking ones lent out or idle.
    public var openConnections: Int { state.withLock { $0.openConnections } }

    /// A shared connection for pipelined commands.
    public func multiplexedConnection() async throws -> RedisConnection {
        enum Outcome {
            case ready(RedisConnection)
            case wait(Task<RedisConnection, any Error>)
            case fail(RedisClientError)
        }
        let outcome: Outcome = state.withLock { machine in
            switch machine.sharedConnection(now: .now, isLocal: { slotEventLoops[$0].inEventLoop }) {
            case .ready(let connection): return .ready(connection)
            case .wait(let task): return .wait(task)
            case .fail(let error): return .fail(error)
            case .connect(let slot, let attempt):
                let task = connect(slot: slot)
                machine.startedConnecting(slot: slot, attempt: attempt, pending: task)
                return .wait(task)
            }
        }
        switch outcome {
        case .ready(let connection): return connection
        case .fail(let error): throw error
        case .wait(let task): return try await task.value
        }
    }

    /// Opens a connection for a shared slot and reports the outcome to the state machine.
    private func connect(slot index: Int) -> Task<RedisConnection, any Error> {
        Task<RedisConnection, any Error> {
            do {
                let connection = try await RedisConnection.connect(configuration: configuration, eventLoop: slotEventLoops[index], logger: logger)
                switch state.withLock({ $0.connected(slot: index, connection) }) {
                case .close:
                    connection.close()
                    throw RedisClientError.poolClosed
                case .keep(let isReconnect):
                    if isReconnect {
                        reconnectCount.wrappingAdd(1, ordering: .relaxed)
                        metrics.reconnects.increment()
                    }
                    return connection
                }
            } catch let error as RedisClientError where error == .poolClosed {
                throw error
            } catch {
                let reason = (error as? RedisClientError)?.detail ?? "\(error)"
                let backoff = state.withLock { $0.connectFailed(slot: index, reason: reason, now: .now) }
                logger.warning("redis connection failed", metadata: ["error": "\(reason)", "redis.retry_in_ms": "\(backoff.milliseconds)"])
                throw error is RedisClientError ? error : RedisClientError.unavailable(reason)
            }
        }
    }

    /// Runs `body` with a dedicated connection. A connection whose command failed in any way
    /// (timeout, cancellation, server error) is closed rather than reused.
    public func withBlockingConnection<T: Sendable>(_ body: (RedisConnection) async throws -> T) async throws -> T {
        let connection: RedisConnection
        switch state.withLock({ $0.leaseBlocking() }) {
        case .fail(let error): throw error
        case .idle(let idle): connection = idle
        case .connect:
            do {
                connection = try await RedisConnection.connect(configuration: configuration, eventLoop: eventLoopGroup.next(), logger: logger)
            } catch {
                state.withLock { $0.blockingConnectFailed() }
                throw error
            }
        }
        do {
            let result = try await body(connection)
            if !state.withLock({ $0.returnBlocking(connection, commandSucceeded: true) }) { connection.close() }
            return result
        } catch {
            _ = state.withLock { $0.returnBlocking(connection, commandSucceeded: false) }
            connection.close()
            throw error
        }
    }

    /// Closes every connection; later calls fail with ``RedisClientError/poolClosed``.
    public func close() {
        let (open, connecting) = state.withLock { $0.close() }
        for connection in open { connection.close() }
        for task in connecting { task.cancel() }
    }
}
