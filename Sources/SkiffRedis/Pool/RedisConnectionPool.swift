import Logging
import Metrics
import NIOCore
import SkiffSupport
import Synchronization

/// Keeps a few shared connections for pipelined commands and lends dedicated ones for blocking commands.
///
/// When Redis cannot be reached, a failed slot backs off exponentially (50 ms doubling to 2 s);
/// commands arriving meanwhile fail at once with ``RedisClientError/unavailable(_:)`` instead of
/// queueing, so callers can answer quickly. Reconnection is lazy: the next command (or the client's
/// health check) after the backoff tries again.
public final class RedisConnectionPool: Sendable {
    private enum Slot {
        case empty
        case connecting(Task<RedisConnection, any Error>)
        case connected(RedisConnection)
        case failed(String, retryAt: ContinuousClock.Instant, attempt: Int)
    }

    private struct State {
        var slots: [Slot]
        var next = 0
        var idleBlocking: [RedisConnection] = []
        var blockingInUse = 0
        var isClosed = false
        /// Slots that had a connection before: a new connection there is a reconnect.
        var everConnected: Set<Int> = []
    }

    public let configuration: RedisConfiguration
    private let eventLoopGroup: any EventLoopGroup
    /// The event loop of each shared slot: slot `i` lives on loop `i % loops`, so every loop has a
    /// connection of its own when there are at least as many slots as loops.
    private let slotEventLoops: [any EventLoop]
    private let logger: Logger
    private let state: Mutex<State>
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
        self.state = Mutex(State(slots: Array(repeating: .empty, count: slotCount)))
    }

    /// Connections opened after the first successful one: a measure of instability.
    public var reconnects: Int { reconnectCount.load(ordering: .relaxed) }

    /// Open connections: shared ones plus blocking ones lent out or idle.
    public var openConnections: Int {
        state.withLock { state in
            state.slots.reduce(0) { count, slot in
                if case .connected(let connection) = slot, connection.isActive { return count + 1 }
                return count
            } + state.idleBlocking.count + state.blockingInUse
        }
    }

    /// A shared connection for pipelined commands.
    public func multiplexedConnection() async throws -> RedisConnection {
        enum Decision {
            case ready(RedisConnection)
            case wait(Task<RedisConnection, any Error>)
            case fail(RedisClientError)
        }
        let now = ContinuousClock.now
        let decision: Decision = state.withLock { state in
            if state.isClosed { return .fail(.poolClosed) }
            let count = state.slots.count
            let start = state.next
            state.next &+= 1
            // A caller on an event loop prefers the connection on that loop: its command and reply
            // then never leave the thread. Otherwise any live connection, starting round-robin.
            for offset in 0..<count {
                let index = (start + offset) % count
                guard slotEventLoops[index].inEventLoop else { continue }
                switch state.slots[index] {
                case .connected(let connection) where connection.isActive: return .ready(connection)
                case .empty: return .wait(startConnecting(slot: index, attempt: 0, state: &state))
                default: continue
                }
            }
            for offset in 0..<count {
                if case .connected(let connection) = state.slots[(start + offset) % count], connection.isActive {
                    return .ready(connection)
                }
            }
            for offset in 0..<count {
                let index = (start + offset) % count
                switch state.slots[index] {
                case .connecting(let task):
                    return .wait(task)
                case .failed(_, let retryAt, let attempt) where retryAt <= now:
                    return .wait(startConnecting(slot: index, attempt: attempt + 1, state: &state))
                case .empty, .connected:
                    return .wait(startConnecting(slot: index, attempt: 0, state: &state))
                case .failed:
                    continue
                }
            }
            if case .failed(let reason, _, _) = state.slots[start % count] { return .fail(.unavailable(reason)) }
            return .fail(.unavailable("no connection"))
        }
        switch decision {
        case .ready(let connection): return connection
        case .fail(let error): throw error
        case .wait(let task): return try await task.value
        }
    }

    private func startConnecting(slot index: Int, attempt: Int, state: inout State) -> Task<RedisConnection, any Error> {
        let task = Task<RedisConnection, any Error> {
            do {
                let connection = try await RedisConnection.connect(
                    configuration: configuration,
                    eventLoop: slotEventLoops[index],
                    logger: logger
                )
                let keep = self.state.withLock { state -> Bool in
                    guard !state.isClosed else { return false }
                    state.slots[index] = .connected(connection)
                    if !state.everConnected.insert(index).inserted {
                        reconnectCount.wrappingAdd(1, ordering: .relaxed)
                        metrics.reconnects.increment()
                    }
                    return true
                }
                if !keep {
                    connection.close()
                    throw RedisClientError.poolClosed
                }
                return connection
            } catch {
                let backoff = Self.backoff(attempt: attempt)
                let reason = (error as? RedisClientError)?.detail ?? "\(error)"
                self.state.withLock { state in
                    state.slots[index] = .failed(reason, retryAt: .now + backoff, attempt: attempt)
                }
                logger.warning(
                    "redis connection failed",
                    metadata: ["error": "\(reason)", "redis.retry_in_ms": "\(backoff.milliseconds)"]
                )
                throw error is RedisClientError ? error : RedisClientError.unavailable(reason)
            }
        }
        state.slots[index] = .connecting(task)
        return task
    }

    /// Exponential backoff with jitter: 50 ms, 100 ms, ... capped at 2 s.
    static func backoff(attempt: Int) -> Duration {
        let base = min(2_000, 50 << min(attempt, 6))
        let jitter = Int.random(in: 0...(base / 4))
        return .milliseconds(base - base / 8 + jitter)
    }

    private enum BlockingLease {
        case idle(RedisConnection)
        case connect
        case fail(RedisClientError)
    }

    /// Runs `body` with a dedicated connection. A connection whose command failed in any way
    /// (timeout, cancellation, server error) is closed rather than reused.
    public func withBlockingConnection<T: Sendable>(_ body: (RedisConnection) async throws -> T) async throws -> T {
        let lease: BlockingLease = state.withLock { state in
            if state.isClosed { return .fail(.poolClosed) }
            while let connection = state.idleBlocking.popLast() {
                if connection.isActive {
                    state.blockingInUse += 1
                    return .idle(connection)
                }
            }
            guard state.blockingInUse < configuration.maxBlockingConnections else {
                return .fail(.unavailable("all \(configuration.maxBlockingConnections) blocking connections are in use"))
            }
            state.blockingInUse += 1
            return .connect
        }
        let connection: RedisConnection
        switch lease {
        case .fail(let error): throw error
        case .idle(let idle): connection = idle
        case .connect:
            do {
                connection = try await RedisConnection.connect(configuration: configuration, eventLoop: eventLoopGroup.next(), logger: logger)
            } catch {
                state.withLock { $0.blockingInUse -= 1 }
                throw error
            }
        }
        do {
            let result = try await body(connection)
            let keep = state.withLock { state -> Bool in
                state.blockingInUse -= 1
                guard !state.isClosed, connection.isActive else { return false }
                state.idleBlocking.append(connection)
                return true
            }
            if !keep { connection.close() }
            return result
        } catch {
            state.withLock { $0.blockingInUse -= 1 }
            connection.close()
            throw error
        }
    }

    /// Closes every connection; later calls fail with ``RedisClientError/poolClosed``.
    public func close() {
        let (slots, idle) = state.withLock { state -> ([Slot], [RedisConnection]) in
            state.isClosed = true
            let slots = state.slots
            state.slots = Array(repeating: .empty, count: state.slots.count)
            let idle = state.idleBlocking
            state.idleBlocking = []
            return (slots, idle)
        }
        for slot in slots {
            switch slot {
            case .connected(let connection): connection.close()
            case .connecting(let task): task.cancel()
            default: break
            }
        }
        for connection in idle { connection.close() }
    }
}
