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
/// On a Redis Cluster the subscriber uses sharded pub/sub (``ShardedSubscriber``): `SSUBSCRIBE`
/// on one connection per primary that serves a channel's slot, for messages published with
/// `SPUBLISH`, which stay on their slot's shard. Channels follow their slot when it moves or
/// fails over; the contract below holds per channel. `onConnectionChange(true)` fires when
/// channels that lost their subscription have it back, `false` when no channel has one.
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
    /// Set on a Redis Cluster: it does the work.
    private let sharded: ShardedSubscriber?
    private let eventLoopGroup: any EventLoopGroup
    private let logger: Logger
    private let onMessage: @Sendable (String, ByteBuffer) -> Void
    private let onConnectionChange: @Sendable (Bool) -> Void
    private let state = Mutex(State())

    init(
        configuration: RedisConfiguration,
        router: ClusterRouter? = nil,
        eventLoopGroup: any EventLoopGroup,
        logger: Logger,
        onMessage: @escaping @Sendable (String, ByteBuffer) -> Void,
        onConnectionChange: @escaping @Sendable (Bool) -> Void
    ) {
        self.configuration = configuration
        self.sharded = router.map {
            ShardedSubscriber(
                router: $0, eventLoopGroup: eventLoopGroup, logger: logger, onMessage: onMessage, onConnectionChange: onConnectionChange)
        }
        self.eventLoopGroup = eventLoopGroup
        self.logger = logger
        self.onMessage = onMessage
        self.onConnectionChange = onConnectionChange
    }

    /// Whether the subscriber hears its channels: its connection is up; on a cluster, every
    /// channel is subscribed on a live connection to its slot's primary (true with no channel).
    public var isConnected: Bool {
        if let sharded { return sharded.isConnected }
        return state.withLock { $0.connection?.isActive ?? false }
    }

    /// `host:port` of the node the subscriber is connected to, if it is; on a cluster, the nodes
    /// with a live subscriber connection, comma-separated.
    public var connectedNode: String? {
        if let sharded {
            let nodes = sharded.connectedNodes.map(\.description).sorted()
            return nodes.isEmpty ? nil : nodes.joined(separator: ",")
        }
        return state.withLock { $0.connection?.isActive == true ? $0.node : nil }
    }

    /// The connection on which `channel` is confirmed now (a number that changes with every new
    /// connection and every unsubscribe), or `nil`. The same answer at two moments means every
    /// message published on the channel in between has been or will be handed to `onMessage`; a
    /// connection lost meanwhile is reported through `onConnectionChange` once the next one is up.
    public func confirmedGeneration(of channel: String) -> UInt64? {
        if let sharded { return sharded.confirmedGeneration(of: channel) }
        return state.withLock { state in
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
        if let sharded { return try await sharded.subscribe(channel) }
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
        if let sharded { return await sharded.unsubscribe(channel) }
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
        if let sharded {
            await cancelWhenGracefulShutdown { await sharded.run() }
            return
        }
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
        let node = configuration
        while !Task.isCancelled {
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
                onConnectionChange(false)
            } catch {
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
