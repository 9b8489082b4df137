import Logging
import NIOCore
public import ServiceLifecycle
import Synchronization

/// A pub/sub subscription on a dedicated connection that survives reconnects.
///
/// The set of channels is kept here; after a reconnect every channel is subscribed again and
/// `onConnectionChange(true)` fires, so the owner can re-check what it may have missed while
/// disconnected (pub/sub does not buffer for absent subscribers).
///
/// On a Redis Cluster a classic `PUBLISH` reaches the subscribers of every node, so one
/// connection to any node hears every channel: the subscriber connects to the nodes the client
/// knows in turn (primaries, replicas, seeds), and moves on to the next when one fails, so a dead
/// node never leaves it deaf.
public final class RedisSubscriber: Sendable, Service {
    private struct State {
        var connection: RedisConnection?
        /// `host:port` of the current connection.
        var node: String?
        var channels: Set<String> = []
        /// Channels Redis confirmed on the current connection: subscribing again is free.
        var confirmed: Set<String> = []
        /// Changes with every new connection and every unsubscribe: a new connection may have
        /// missed what was published before it, and a channel subscribed again what was published
        /// while it was not.
        var generation: UInt64 = 0
        var isShutDown = false
    }

    private let configuration: RedisConfiguration
    /// Where to connect, in order of preference (a single Redis: itself; a cluster: its nodes).
    private let candidates: @Sendable () -> [RedisConfiguration]
    private let eventLoopGroup: any EventLoopGroup
    private let logger: Logger
    private let onMessage: @Sendable (String, ByteBuffer) -> Void
    private let onConnectionChange: @Sendable (Bool) -> Void
    private let state = Mutex(State())

    init(
        configuration: RedisConfiguration,
        candidates: (@Sendable () -> [RedisConfiguration])? = nil,
        eventLoopGroup: any EventLoopGroup,
        logger: Logger,
        onMessage: @escaping @Sendable (String, ByteBuffer) -> Void,
        onConnectionChange: @escaping @Sendable (Bool) -> Void
    ) {
        self.configuration = configuration
        self.candidates = candidates ?? { [configuration] }
        self.eventLoopGroup = eventLoopGroup
        self.logger = logger
        self.onMessage = onMessage
        self.onConnectionChange = onConnectionChange
    }

    public var isConnected: Bool { state.withLock { $0.connection?.isActive ?? false } }

    /// `host:port` of the node the subscriber is connected to, if it is.
    public var connectedNode: String? { state.withLock { $0.connection?.isActive == true ? $0.node : nil } }

    /// The connection on which `channel` is confirmed now (a number that changes with every new
    /// connection and every unsubscribe), or `nil`. The same answer at two moments means every
    /// message published on the channel in between has been or will be handed to `onMessage`; a
    /// connection lost meanwhile is reported through `onConnectionChange` once the next one is up.
    public func confirmedGeneration(of channel: String) -> UInt64? {
        state.withLock { state in
            guard state.confirmed.contains(channel), state.connection?.isActive == true else { return nil }
            return state.generation
        }
    }

    /// Subscribes and returns once Redis confirmed it: every message published afterwards arrives.
    ///
    /// While the subscriber is (re)connecting, waits for it up to the connect timeout plus the
    /// command timeout.
    ///
    /// - Throws: ``RedisClientError/unavailable(_:)`` when it stays disconnected. The channel is
    ///   still remembered and subscribed on reconnect.
    public func subscribe(_ channel: String) async throws {
        let deadline = ContinuousClock.now + configuration.connectTimeout + configuration.commandTimeout
        while true {
            let (connection, isConfirmed, isShutDown) = state.withLock { state -> (RedisConnection?, Bool, Bool) in
                state.channels.insert(channel)
                return (state.connection, state.confirmed.contains(channel), state.isShutDown)
            }
            if let connection, connection.isActive {
                if isConfirmed { return }
                _ = try await connection.send(RedisCommand("SUBSCRIBE", .string(channel)), timeout: configuration.commandTimeout)
                state.withLock { state in
                    if state.connection === connection { state.confirmed.insert(channel) }
                }
                return
            }
            if isShutDown || ContinuousClock.now >= deadline { throw RedisClientError.unavailable("subscriber is not connected") }
            // Rare (start-up, reconnect): a short poll is simpler than a second notification path.
            try await Task.sleep(for: .milliseconds(10))
        }
    }

    public func unsubscribe(_ channel: String) async {
        let connection = state.withLock { state -> RedisConnection? in
            state.channels.remove(channel)
            state.confirmed.remove(channel)
            state.generation &+= 1
            return state.connection
        }
        guard let connection, connection.isActive else { return }
        _ = try? await connection.send(RedisCommand("UNSUBSCRIBE", .string(channel)), timeout: configuration.commandTimeout)
    }

    /// Keeps the subscriber connected until graceful shutdown.
    public func run() async throws {
        await cancelWhenGracefulShutdown {
            await self.maintainConnection()
        }
        let connection = state.withLock { state -> RedisConnection? in
            state.isShutDown = true
            defer { state.connection = nil }
            return state.connection
        }
        connection?.close()
    }

    private func maintainConnection() async {
        var attempt = 0
        /// Which candidate to try next: the next one after every failure or lost connection.
        var turn = 0
        while !Task.isCancelled {
            let nodes = candidates()
            let node = nodes.isEmpty ? configuration : nodes[turn % nodes.count]
            do {
                let onMessage = self.onMessage
                let connection = try await RedisConnection.connect(
                    configuration: node,
                    eventLoop: eventLoopGroup.next(),
                    logger: logger,
                    onPush: { value in
                        guard case .array(let parts) = value, parts.count >= 3,
                            let channel = parts[parts.count - 2].string, let payload = parts[parts.count - 1].bytes
                        else { return }
                        onMessage(channel, payload)
                    }
                )
                let channels = state.withLock { state -> Set<String>? in
                    if state.isShutDown { return nil }
                    state.connection = connection
                    state.node = "\(node.host):\(node.port)"
                    state.generation &+= 1
                    state.confirmed = []
                    return state.channels
                }
                guard let channels else {
                    connection.close()
                    return
                }
                for channel in channels {
                    _ = try await connection.send(RedisCommand("SUBSCRIBE", .string(channel)), timeout: configuration.commandTimeout)
                    state.withLock { state in
                        if state.connection === connection { state.confirmed.insert(channel) }
                    }
                }
                attempt = 0
                onConnectionChange(true)
                try? await withTaskCancellationHandler {
                    try await connection.closeFuture.get()
                } onCancel: {
                    connection.close()
                }
                state.withLock { state in
                    if state.connection === connection { state.connection = nil }
                }
                if Task.isCancelled { return }
                logger.warning("redis subscriber connection lost; reconnecting", metadata: ["redis.node": "\(node.host):\(node.port)"])
                turn &+= 1
                onConnectionChange(false)
            } catch {
                turn &+= 1
                state.withLock {
                    $0.connection?.close(); $0.connection = nil
                }
                if attempt == 0 { onConnectionChange(false) }
                let delay = RedisBackoff.delay(attempt: attempt)
                attempt += 1
                logger.debug("redis subscriber reconnect failed", metadata: ["error": "\(error)"])
                try? await Task.sleep(for: delay)
            }
        }
    }
}
