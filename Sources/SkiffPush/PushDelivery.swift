import AsyncHTTPClient
public import Logging
public import Metrics
import NIOCore
public import ServiceLifecycle
public import SkiffQueue
import Synchronization

/// How a replica delivers push subscriptions (`PUSH_*` settings).
public struct PushConfiguration: Sendable, Equatable {
    /// Whether this replica pushes at all (`PUSH_ENABLED`). Every replica that does shares the work.
    public var enabled: Bool
    public var addressRules: PushAddressRules
    /// How much longer than a push's timeout its lease lasts: a replica that stalls or dies
    /// mid-push gives the message back this long after the push would have timed out.
    public var leaseMargin: Duration
    /// How often the replica looks for changed push subscriptions and reports its counts.
    public var refreshInterval: Duration
    /// How long one consumer of a subscription's queue waits for a message in one receive.
    public var receiveWait: Duration
    /// How long a host's checked addresses are trusted before they are resolved and checked again.
    public var resolutionLifetime: Duration

    public init(
        enabled: Bool = true,
        addressRules: PushAddressRules = PushAddressRules(),
        leaseMargin: Duration = .seconds(30),
        refreshInterval: Duration = .seconds(1),
        receiveWait: Duration = .seconds(20),
        resolutionLifetime: Duration = .seconds(30)
    ) {
        self.enabled = enabled
        self.addressRules = addressRules
        self.leaseMargin = leaseMargin
        self.refreshInterval = refreshInterval
        self.receiveWait = receiveWait
        self.resolutionLifetime = resolutionLifetime
    }
}

/// Push delivery (issue 20): every replica consumes the queues of the service's push
/// subscriptions and POSTs each message to its subscription's endpoint.
///
/// A push is a delivery like any other: the message is claimed from the subscription's queue in
/// acknowledged mode with a lease of the push timeout plus ``PushConfiguration/leaseMargin``
/// (so one replica pushes it at a time), acked when the endpoint answers 2xx, and nacked
/// otherwise: the queue's backoff (the endpoint's) delays the next attempt, and after
/// `maxAttempts` the queue dead-letters it. A replica that dies mid-push leaves the message to
/// its lease, and another replica pushes it again: delivery is at least once.
///
/// A slow endpoint holds only its own subscription's consumers (``PushEndpoint/concurrency``
/// per replica); publishing only stores copies, and never waits for a push.
public final class PushDelivery: Service, Sendable {
    private let backend: any QueueBackend
    private let store: any TopicStore
    private let configuration: PushConfiguration
    private let logger: Logger
    private let metricsFactory: any MetricsFactory
    private let client: HTTPClient
    private let resolve: @Sendable (String) async throws -> [IPAddress]
    private let state = Mutex(State())

    private struct State {
        var running: [Key: Running] = [:]
        var counts: [Key: (pushed: Int64, failed: Int64)] = [:]
    }

    struct Key: Hashable, Sendable {
        let topic: TopicName
        let subscription: SubscriptionName
    }

    private struct Running {
        let subscription: TopicSubscription
        let task: Task<Void, Never>
        let metrics: PushMetrics
    }

    /// - Parameters:
    ///   - backend: the replica's backend (with its partitions), whose queues hold the copies.
    ///   - resolve: a host's addresses, for the address rules (the system resolver by default).
    public init(
        backend: some QueueBackend,
        store: any TopicStore,
        configuration: PushConfiguration,
        logger: Logger,
        metricsFactory: any MetricsFactory = MetricsSystem.factory,
        resolve: @escaping @Sendable (String) async throws -> [IPAddress] = PushAddressRules.resolveHost
    ) {
        self.backend = backend
        self.store = store
        self.configuration = configuration
        self.logger = logger
        self.metricsFactory = metricsFactory
        self.resolve = resolve
        var client = HTTPClient.Configuration()
        // A redirect could lead anywhere, past the address rules: a 3xx is a failed attempt.
        client.redirectConfiguration = .disallow
        client.timeout = .init(connect: .seconds(10))
        client.connectionPool.concurrentHTTP1ConnectionsPerHostSoftLimit = PushEndpoint.maximumConcurrency
        client.decompression = .disabled
        self.client = HTTPClient(eventLoopGroupProvider: .singleton, configuration: client)
    }

    public func run() async throws {
        defer { stopAll() }
        let unsupported = await cancelWhenGracefulShutdown { () -> Bool in
            var version: String?
            while !Task.isCancelled {
                do {
                    let current = try await self.store.pushSubscriptionsVersion()
                    if current != version {
                        let read = try await self.store.pushSubscriptions()
                        self.reconcile(read.entries)
                        version = read.version
                    }
                    await self.reportCounts()
                } catch let error as QueueError where error.kind == .unsupported {
                    self.logger.notice("push subscriptions are not available on this backend", metadata: ["error": "\(error)"])
                    return true
                } catch is CancellationError {
                    break
                } catch {
                    self.logger.warning("could not read the push subscriptions; trying again", metadata: ["error": "\(error)"])
                }
                try? await Task.sleep(for: self.configuration.refreshInterval)
            }
            return false
        }
        // A service that returns ends the application: without push subscriptions (a Redis
        // Cluster), this one waits for the shutdown like the others.
        if unsupported { try? await gracefulShutdown() }
        // Pushes under way finish (each within its timeout) and settle before the counts go out.
        let tasks = state.withLock { state in state.running.values.map(\.task) }
        for task in tasks { task.cancel() }
        for task in tasks { await task.value }
        await reportCounts()
        try await client.shutdown()
    }

    private func stopAll() {
        state.withLock { state in
            for running in state.running.values { running.task.cancel() }
        }
    }

    /// Starts consumers for new subscriptions, restarts changed ones, stops deleted ones.
    func reconcile(_ entries: [PushSubscriptions.Entry]) {
        let wanted = Dictionary(entries.map { (Key(topic: $0.topic, subscription: $0.subscription.name), $0.subscription) }) { first, _ in first }
        state.withLock { state in
            // A changed subscription's new consumers start once the old ones' pushes are done, so
            // a subscription never has more than its concurrency in flight.
            var stopping: [Key: Task<Void, Never>] = [:]
            for (key, running) in state.running where wanted[key] != running.subscription {
                running.task.cancel()
                state.running[key] = nil
                stopping[key] = running.task
                if wanted[key] == nil {
                    // Deleted: its metric series go once its last push is counted.
                    Task { [task = running.task, metrics = running.metrics] in
                        await task.value
                        metrics.destroy()
                    }
                }
                logger.info("push subscription stopped", metadata: ["topic.name": "\(key.topic)", "subscription.name": "\(key.subscription)"])
            }
            for (key, subscription) in wanted where state.running[key] == nil {
                guard let endpoint = subscription.push else { continue }
                let metrics = PushMetrics(topic: key.topic, subscription: key.subscription, factory: metricsFactory)
                let pusher = SubscriptionPusher(
                    topic: key.topic,
                    subscription: subscription,
                    endpoint: endpoint,
                    backend: backend,
                    client: client,
                    configuration: configuration,
                    metrics: metrics,
                    logger: logger,
                    resolve: resolve
                ) { [weak self] outcome in self?.count(outcome, for: key) }
                let previous = stopping[key]
                let task = Task {
                    await previous?.value
                    await pusher.run()
                }
                state.running[key] = Running(subscription: subscription, task: task, metrics: metrics)
                logger.info(
                    "push subscription started",
                    metadata: ["topic.name": "\(key.topic)", "subscription.name": "\(key.subscription)", "queue.name": "\(subscription.queue)"]
                )
            }
        }
    }

    private func count(_ outcome: SubscriptionPusher.Outcome, for key: Key) {
        state.withLock { state in
            switch outcome {
            case .pushed: state.counts[key, default: (0, 0)].pushed += 1
            case .deadLettered: state.counts[key, default: (0, 0)].failed += 1
            case .retried: break
            }
        }
    }

    /// Adds what this replica counted to the subscriptions' counters; kept for the next time
    /// when storage fails.
    func reportCounts() async {
        let counts = state.withLock { state in
            defer { state.counts = [:] }
            return state.counts
        }
        guard !counts.isEmpty else { return }
        do {
            try await store.countPushes(
                counts.map { PushCount(topic: $0.key.topic, subscription: $0.key.subscription, pushed: $0.value.pushed, failed: $0.value.failed) }
            )
        } catch {
            state.withLock { state in
                for (key, value) in counts {
                    state.counts[key, default: (0, 0)].pushed += value.pushed
                    state.counts[key, default: (0, 0)].failed += value.failed
                }
            }
            logger.warning("could not report push counts; they are kept for the next report", metadata: ["error": "\(error)"])
        }
    }

    /// The subscriptions this replica pushes now (for tests).
    var runningSubscriptions: Set<Key> {
        state.withLock { Set($0.running.keys) }
    }
}
