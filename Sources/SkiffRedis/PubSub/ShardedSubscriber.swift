import Logging
import NIOCore
import Synchronization

/// The subscriber of a Redis Cluster: sharded pub/sub (`SSUBSCRIBE`, Redis 7), one connection per
/// primary that serves a subscribed channel's slot, so a message published with `SPUBLISH` stays
/// on its slot's shard instead of crossing the whole cluster bus.
///
/// Channels follow their slot: when Redis drops one (a `sunsubscribe` push: the slot moved, or its
/// primary became a replica), when `SSUBSCRIBE` answers `MOVED`, when a node's connection is lost,
/// or when the slot map names another owner, the channel loses its subscription (its generation
/// is gone) and is subscribed again at the owner the map names after it is read again. The
/// decisions live in ``ShardedSubscriptionStateMachine``; this class does the I/O.
final class ShardedSubscriber: Sendable {
    private struct State {
        var machine = ShardedSubscriptionStateMachine<RedisConnection>()
        /// A channel was dropped by Redis: read the map before the next plan.
        var mapIsStale = false
        var isShutDown = false
    }

    private let router: ClusterRouter
    private let eventLoopGroup: any EventLoopGroup
    private let logger: Logger
    private let onMessage: @Sendable (String, ByteBuffer) -> Void
    private let onConnectionChange: @Sendable (Bool) -> Void
    private let state = Mutex(State())
    /// Asks the maintenance loop for a plan (buffers one request).
    private let pokes: AsyncStream<Void>
    private let poker: AsyncStream<Void>.Continuation
    /// How often a plan runs without a reason (channels whose slot moved silently, on a map the
    /// client's health check refreshes every second).
    static let planInterval = Duration.seconds(1)

    init(
        router: ClusterRouter,
        eventLoopGroup: any EventLoopGroup,
        logger: Logger,
        onMessage: @escaping @Sendable (String, ByteBuffer) -> Void,
        onConnectionChange: @escaping @Sendable (Bool) -> Void
    ) {
        self.router = router
        self.eventLoopGroup = eventLoopGroup
        self.logger = logger
        self.onMessage = onMessage
        self.onConnectionChange = onConnectionChange
        (pokes, poker) = AsyncStream.makeStream(of: Void.self, bufferingPolicy: .bufferingNewest(1))
    }

    private var configuration: RedisConfiguration { router.configuration }

    /// Every channel is subscribed on a live connection to its slot's primary (true with none).
    var isConnected: Bool { state.withLock { $0.machine.isConnected(isActive: \.isActive) } }

    /// The nodes with a live subscriber connection.
    var connectedNodes: [ClusterNodeAddress] {
        state.withLock { state in
            state.machine.connectedNodes.filter { state.machine.connection(to: $0)?.0.isActive == true }
        }
    }

    func confirmedGeneration(of channel: String) -> UInt64? {
        state.withLock { $0.machine.confirmedGeneration(of: channel, isActive: \.isActive) }
    }

    /// Subscribes on the connection to the slot's primary (opened by the maintenance loop when
    /// there is none), following `MOVED`, until the connect timeout plus the command timeout.
    func subscribe(_ channel: String) async throws {
        let deadline = ContinuousClock.now + configuration.connectTimeout + configuration.commandTimeout
        let slot = ClusterSlot.of(channel)
        while true {
            let (isConfirmed, isShutDown) = state.withLock { state in
                if !state.isShutDown { state.machine.want(channel) }
                return (state.machine.confirmedGeneration(of: channel, isActive: \.isActive) != nil, state.isShutDown)
            }
            if isConfirmed { return }
            if isShutDown { throw RedisClientError.unavailable("subscriber is shut down") }
            let node = try? await router.primary(for: slot)
            if let node, let (connection, epoch) = state.withLock({ $0.machine.connection(to: node) }), connection.isActive {
                do {
                    _ = try await connection.send(RedisCommand("SSUBSCRIBE", .string(channel)), timeout: configuration.commandTimeout)
                    let wasInterrupted = state.withLock { $0.machine.subscribed(channel, node: node, epoch: epoch) }
                    if wasInterrupted { onConnectionChange(true) }
                    continue
                } catch let error as RedisServerError {
                    guard let redirection = ClusterRedirection(error, answeredBy: node.host) else { throw error }
                    if case .moved(let slot, let address) = redirection { router.moved(slot: slot, to: address) }
                } catch {
                    // The connection broke: the maintenance loop reconnects.
                }
            } else {
                poker.yield()
            }
            if ContinuousClock.now >= deadline { throw RedisClientError.unavailable("subscriber is not connected to the primary of slot \(slot)") }
            // Rare (start-up, a new shard, a move): a short poll is simpler than a second path.
            try await Task.sleep(for: .milliseconds(10))
        }
    }

    func unsubscribe(_ channel: String) async {
        guard let connection = state.withLock({ $0.machine.unwant(channel) }), connection.isActive else { return }
        _ = try? await connection.send(RedisCommand("SUNSUBSCRIBE", .string(channel)), timeout: configuration.commandTimeout)
    }

    /// Keeps every channel subscribed at its slot's primary until cancelled, then closes the
    /// connections.
    func run() async {
        await withDiscardingTaskGroup { group in
            group.addTask {
                while !Task.isCancelled {
                    try? await Task.sleep(for: Self.planInterval)
                    self.poker.yield()
                }
            }
            for await _ in pokes {
                if Task.isCancelled { break }
                await pass(group: &group)
            }
            group.cancelAll()
        }
        let open = state.withLock { state in
            state.isShutDown = true
            return state.machine.shutDown()
        }
        for connection in open { connection.close() }
    }

    /// One plan, carried out.
    private func pass(group: inout DiscardingTaskGroup) async {
        if state.withLock({ $0.mapIsStale }) {
            state.withLock { $0.mapIsStale = false }
            _ = try? await router.refresh(minimumInterval: .milliseconds(100))
        }
        let router = self.router
        let plan = state.withLock { $0.machine.plan(owner: { router.knownPrimary(for: $0) }, now: .now) }
        if plan.needsMap { state.withLock { $0.mapIsStale = true } }
        for (node, epoch) in plan.connect {
            group.addTask { await self.connect(node, epoch: epoch) }
        }
        for (connection, channels) in plan.unsubscribe {
            // Left behind on a node that no longer serves them: not waited for.
            group.addTask {
                for channel in channels {
                    _ = try? await connection.send(RedisCommand("SUNSUBSCRIBE", .string(channel)), timeout: self.configuration.commandTimeout)
                }
            }
        }
        var resubscribed = false
        var again = plan.needsMap
        for (node, epoch, connection, channels) in plan.subscribe {
            let commands = channels.map { RedisCommand("SSUBSCRIBE", .string($0)) }
            guard let results = try? await connection.sendPipelined(commands, timeout: configuration.commandTimeout) else { continue }
            for (channel, result) in zip(channels, results) {
                switch result {
                case .success:
                    if state.withLock({ $0.machine.subscribed(channel, node: node, epoch: epoch) }) { resubscribed = true }
                case .failure(let error as RedisServerError):
                    if case .moved(let slot, let address) = ClusterRedirection(error, answeredBy: node.host) {
                        router.moved(slot: slot, to: address)
                    } else {
                        logger.debug("redis SSUBSCRIBE refused", metadata: ["redis.node": "\(node)", "error": "\(error)"])
                    }
                    again = true
                case .failure:
                    // The connection broke: its connect task reports it.
                    break
                }
            }
        }
        for connection in plan.close { connection.close() }
        if resubscribed { onConnectionChange(true) }
        if again {
            // A redirection or a missing map: try again shortly, not in a tight loop.
            group.addTask {
                try? await Task.sleep(for: .milliseconds(50))
                self.poker.yield()
            }
        }
    }

    /// Opens the subscriber connection to `node`, then holds it until it closes.
    private func connect(_ node: ClusterNodeAddress, epoch: UInt64) async {
        let connection: RedisConnection
        do {
            connection = try await RedisConnection.connect(
                configuration: configuration.node(node),
                eventLoop: eventLoopGroup.next(),
                logger: logger,
                onPush: { [weak self] value in self?.received(value, node: node, epoch: epoch) }
            )
        } catch {
            logger.debug("redis subscriber connect failed", metadata: ["redis.node": "\(node)", "error": "\(error)"])
            let (retryAt, isDeaf) = state.withLock { state -> (ContinuousClock.Instant?, Bool) in
                state.machine.connectFailed(node, epoch: epoch, now: .now)
                guard case .waiting(let retryAt) = state.machine.nodes[node] else { return (nil, Self.isDeaf(state.machine)) }
                return (retryAt, Self.isDeaf(state.machine))
            }
            if isDeaf { onConnectionChange(false) }
            router.nodeFailed(node)
            if let retryAt { try? await Task.sleep(until: retryAt) }
            poker.yield()
            return
        }
        let kept = state.withLock { !$0.isShutDown && $0.machine.connected(node, connection, epoch: epoch) }
        guard kept else {
            connection.close()
            return
        }
        poker.yield()
        try? await withTaskCancellationHandler {
            try await connection.closeFuture.get()
        } onCancel: {
            connection.close()
        }
        let (lost, isDeaf) = state.withLock { state in
            let lost = state.machine.connectionClosed(node, epoch: epoch)
            return (lost, Self.isDeaf(state.machine))
        }
        guard !lost.isEmpty, !Task.isCancelled else { return }
        logger.warning("redis subscriber connection lost; resubscribing", metadata: ["redis.node": "\(node)", "redis.channels": "\(lost.count)"])
        if isDeaf { onConnectionChange(false) }
        router.nodeFailed(node)
        poker.yield()
    }

    /// A push on `node`'s connection `epoch`: a message, or Redis dropping a channel whose slot left.
    private func received(_ value: RedisValue, node: ClusterNodeAddress, epoch: UInt64) {
        guard case .array(let parts) = value, parts.count == 3, let kind = parts[0].string, let channel = parts[1].string else { return }
        switch kind {
        case "smessage", "message":
            guard let payload = parts[2].bytes else { return }
            onMessage(channel, payload)
        case "sunsubscribe":
            let (lost, isDeaf) = state.withLock { state in
                let lost = state.machine.dropped(channel, node: node, epoch: epoch)
                if lost { state.mapIsStale = true }
                return (lost, Self.isDeaf(state.machine))
            }
            guard lost else { return }
            logger.info("redis dropped a shard channel (its slot moved); resubscribing", metadata: ["redis.node": "\(node)", "redis.channel": "\(channel)"])
            if isDeaf { onConnectionChange(false) }
            poker.yield()
        default:
            break
        }
    }

    /// Channels are wanted and none is subscribed: nothing published reaches this subscriber.
    private static func isDeaf(_ machine: ShardedSubscriptionStateMachine<RedisConnection>) -> Bool {
        !machine.channels.isEmpty && machine.channels.values.allSatisfy { $0.subscription == nil }
    }
}
