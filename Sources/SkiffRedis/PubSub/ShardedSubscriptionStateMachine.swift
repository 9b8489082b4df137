/// The decisions of the sharded subscriber (``ShardedSubscriber``), apart from sockets, tasks and
/// locks: which channels are wanted, on which node each one is subscribed, which node connections
/// to open, keep or close, and which channels lost their subscription. The subscriber holds it
/// under a lock, feeds it events and carries out the ``Plan`` it answers; the slot map and the
/// time come in as arguments, so its tests need neither a cluster nor a clock.
///
/// A channel's subscription is confirmed on one node connection at a time. Every confirmation
/// gets a number never given before (its generation), and anything that may have made the channel
/// miss a message clears it: the connection closing, Redis dropping the channel (its slot moved:
/// a `sunsubscribe` push), the map naming another owner, an unsubscribe. So the same generation
/// at two moments means the channel was subscribed, on its slot's node, all along.
struct ShardedSubscriptionStateMachine<Connection: AnyObject> {
    struct Subscription {
        var node: ClusterNodeAddress
        /// Which connection to `node` (a node reconnected is another epoch).
        var epoch: UInt64
        var generation: UInt64
    }

    struct Channel {
        let slot: Int
        var subscription: Subscription?
        /// Lost a subscription since it was last confirmed: once it is back, the owner re-checks
        /// what it may have missed.
        var interrupted = false
    }

    enum Node {
        case connecting(epoch: UInt64)
        case connected(Connection, epoch: UInt64)
        /// The last connect failed: not before `retryAt`.
        case waiting(retryAt: ContinuousClock.Instant)
    }

    /// What the subscriber does next, in this order.
    struct Plan {
        /// Open a connection to each, then report ``connected(_:_:epoch:)`` or ``connectFailed(_:epoch:now:)``.
        var connect: [(node: ClusterNodeAddress, epoch: UInt64)] = []
        /// `SUNSUBSCRIBE` these channels on the connection (channels that moved away or were left).
        var unsubscribe: [(connection: Connection, channels: [String])] = []
        /// `SSUBSCRIBE` these channels on the connection, then report ``subscribed(_:node:epoch:)``.
        var subscribe: [(node: ClusterNodeAddress, epoch: UInt64, connection: Connection, channels: [String])] = []
        /// Connections to nodes that serve no wanted channel any more.
        var close: [Connection] = []
        /// Wanted channels whose slot has no known primary: read the map again.
        var needsMap = false
    }

    private(set) var channels: [String: Channel] = [:]
    private(set) var nodes: [ClusterNodeAddress: Node] = [:]
    /// Failed connects in a row per node, for the backoff.
    private var failures: [ClusterNodeAddress: Int] = [:]
    private var lastGeneration: UInt64 = 0
    private var lastEpoch: UInt64 = 0
    private let backoff: (Int) -> Duration

    init(backoff: @escaping (Int) -> Duration = RedisBackoff.delay(attempt:)) {
        self.backoff = backoff
    }

    // MARK: The owner's calls

    /// Adds a channel to the wanted set; `false` when it was there already.
    @discardableResult
    mutating func want(_ channel: String) -> Bool {
        guard channels[channel] == nil else { return false }
        channels[channel] = Channel(slot: ClusterSlot.of(channel))
        return true
    }

    /// Removes a channel; answers the connection to `SUNSUBSCRIBE` it on, if it was subscribed.
    mutating func unwant(_ channel: String) -> Connection? {
        guard let removed = channels.removeValue(forKey: channel), let subscription = removed.subscription else { return nil }
        return liveConnection(subscription.node, epoch: subscription.epoch)
    }

    /// The channel's generation while it is subscribed, else `nil`; `isActive` tells whether a
    /// connection is still open (a connection that closed is not yet reported).
    func confirmedGeneration(of channel: String, isActive: (Connection) -> Bool) -> UInt64? {
        guard let subscription = channels[channel]?.subscription,
            let connection = liveConnection(subscription.node, epoch: subscription.epoch), isActive(connection)
        else { return nil }
        return subscription.generation
    }

    /// The open connection to `node`, to subscribe there at once.
    func connection(to node: ClusterNodeAddress) -> (Connection, epoch: UInt64)? {
        guard case .connected(let connection, let epoch) = nodes[node] else { return nil }
        return (connection, epoch)
    }

    /// Every wanted channel is subscribed on an open connection (true with none wanted).
    func isConnected(isActive: (Connection) -> Bool) -> Bool {
        channels.values.allSatisfy { channel in
            guard let subscription = channel.subscription, let connection = liveConnection(subscription.node, epoch: subscription.epoch)
            else { return false }
            return isActive(connection)
        }
    }

    /// Nodes with an open connection.
    var connectedNodes: [ClusterNodeAddress] {
        nodes.compactMap { node, state in
            if case .connected = state { return node }
            return nil
        }
    }

    // MARK: Events

    /// Redis confirmed `SSUBSCRIBE channel` on `node`'s connection `epoch`. Answers whether the
    /// channel had been interrupted (its owner should look again for what it missed). A channel no
    /// longer wanted, or a connection already replaced, changes nothing.
    mutating func subscribed(_ channel: String, node: ClusterNodeAddress, epoch: UInt64) -> Bool {
        guard var state = channels[channel], liveConnection(node, epoch: epoch) != nil else { return false }
        if let subscription = state.subscription, subscription.node == node, subscription.epoch == epoch { return false }
        lastGeneration &+= 1
        state.subscription = Subscription(node: node, epoch: epoch, generation: lastGeneration)
        let wasInterrupted = state.interrupted
        state.interrupted = false
        channels[channel] = state
        return wasInterrupted
    }

    /// Redis dropped `channel` on `node`'s connection `epoch` (a `sunsubscribe` push: its slot left
    /// the node). Answers whether the channel lost its subscription.
    mutating func dropped(_ channel: String, node: ClusterNodeAddress, epoch: UInt64) -> Bool {
        guard let subscription = channels[channel]?.subscription, subscription.node == node, subscription.epoch == epoch else { return false }
        interrupt(channel)
        return true
    }

    /// Starts a connect to `node` outside a plan; `nil` when one is open or under way.
    mutating func startConnecting(_ node: ClusterNodeAddress, now: ContinuousClock.Instant) -> UInt64? {
        switch nodes[node] {
        case .connecting, .connected: return nil
        case .waiting(let retryAt) where retryAt > now: return nil
        case .waiting, nil: break
        }
        lastEpoch &+= 1
        nodes[node] = .connecting(epoch: lastEpoch)
        return lastEpoch
    }

    /// A connect started by a plan succeeded. `false`: it is not wanted any more, close it.
    mutating func connected(_ node: ClusterNodeAddress, _ connection: Connection, epoch: UInt64) -> Bool {
        guard case .connecting(epoch) = nodes[node] else { return false }
        nodes[node] = .connected(connection, epoch: epoch)
        failures[node] = nil
        return true
    }

    mutating func connectFailed(_ node: ClusterNodeAddress, epoch: UInt64, now: ContinuousClock.Instant) {
        guard case .connecting(epoch) = nodes[node] else { return }
        let attempt = failures[node, default: 0]
        failures[node] = attempt + 1
        nodes[node] = .waiting(retryAt: now + backoff(attempt))
    }

    /// `node`'s connection `epoch` closed: the channels subscribed on it lost their subscription
    /// (answered).
    mutating func connectionClosed(_ node: ClusterNodeAddress, epoch: UInt64) -> [String] {
        guard case .connected(_, epoch) = nodes[node] else { return [] }
        nodes[node] = nil
        let lost = channels.compactMap { name, channel in
            channel.subscription.map { $0.node == node && $0.epoch == epoch } == true ? name : nil
        }
        for channel in lost { interrupt(channel) }
        return lost
    }

    /// What to do so that every wanted channel is subscribed at the primary that `owner` names for
    /// its slot. A channel subscribed on another node than that loses its subscription (it may miss
    /// what is published at the new owner until it is subscribed there).
    mutating func plan(owner: (Int) -> ClusterNodeAddress?, now: ContinuousClock.Instant) -> Plan {
        var plan = Plan()
        var toSubscribe: [ClusterNodeAddress: [String]] = [:]
        var toUnsubscribe: [ObjectIdentifier: (Connection, [String])] = [:]
        var used: Set<ClusterNodeAddress> = []
        for (name, channel) in channels {
            guard let target = owner(channel.slot) else {
                plan.needsMap = true
                if let subscription = channel.subscription { used.insert(subscription.node) }
                continue
            }
            used.insert(target)
            if let subscription = channel.subscription {
                if subscription.node == target { continue }
                if let connection = liveConnection(subscription.node, epoch: subscription.epoch) {
                    toUnsubscribe[ObjectIdentifier(connection), default: (connection, [])].1.append(name)
                }
                interrupt(name)
            }
            toSubscribe[target, default: []].append(name)
        }
        for (node, names) in toSubscribe {
            if case .connected(let connection, let epoch) = nodes[node] {
                plan.subscribe.append((node, epoch, connection, names.sorted()))
            } else if let epoch = startConnecting(node, now: now) {
                plan.connect.append((node, epoch))
            }
        }
        plan.unsubscribe = toUnsubscribe.values.map { ($0.0, $0.1.sorted()) }
        for (node, state) in nodes where !used.contains(node) {
            switch state {
            case .connected(let connection, _):
                plan.close.append(connection)
                nodes[node] = nil
            case .waiting:
                nodes[node] = nil
                failures[node] = nil
            case .connecting:
                // Reported later; `connected` finds it unwanted only if a plan removed it.
                break
            }
        }
        return plan
    }

    /// Closing: every open connection, to close.
    mutating func shutDown() -> [Connection] {
        let open = nodes.values.compactMap { state -> Connection? in
            if case .connected(let connection, _) = state { return connection }
            return nil
        }
        nodes = [:]
        for name in channels.keys where channels[name]?.subscription != nil { interrupt(name) }
        return open
    }

    // MARK: Helpers

    private mutating func interrupt(_ channel: String) {
        channels[channel]?.subscription = nil
        channels[channel]?.interrupted = true
    }

    private func liveConnection(_ node: ClusterNodeAddress, epoch: UInt64) -> Connection? {
        guard case .connected(let connection, epoch) = nodes[node] else { return nil }
        return connection
    }
}
