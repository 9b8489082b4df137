public import Hummingbird
public import Logging
public import Metrics
import NIOCore
import NIOPosix
public import ServiceLifecycle
import SkiffGoogleCloud
import SkiffPush
public import SkiffQueue
import SkiffRedis
import SkiffRedisQueue

public typealias SkiffApplication = Application<RouterResponder<SkiffRequestContext>>

/// Assembles a replica from its configuration: Redis when configured, memory otherwise.
///
/// - Parameters:
///   - metricsFactory: where the HTTP and Redis metrics go; the executable passes its Prometheus factory.
///   - metricsExposition: what `GET /metrics` renders; `nil` leaves the route out.
public func buildApplication(
    configuration: SkiffConfiguration,
    logger: Logger,
    metricsFactory: any MetricsFactory = MetricsSystem.factory,
    metricsExposition: (any MetricsExposition)? = nil
) -> SkiffApplication {
    let group = MultiThreadedEventLoopGroup.singleton
    let tracing = makeTracingBackend(configuration, logger: logger)
    if var redisConfiguration = configuration.redis {
        if case .googleIAM(let metadataHost) = configuration.redisAuthentication {
            let tokens = GoogleAccessTokenSource(metadataHost: metadataHost, logger: logger)
            redisConfiguration.passwordSource = RedisPasswordSource(name: "IAM access token (metadata server \(metadataHost))") {
                try await tokens.accessToken()
            }
        }
        let client = RedisClient(
            configuration: redisConfiguration, eventLoopGroup: group, logger: logger, metricsFactory: metricsFactory, tracer: tracing?.tracing.tracer)
        let backend = RedisQueueBackend(
            client: client,
            configuration: RedisQueueConfiguration(
                keyPrefix: configuration.keyPrefix,
                claimLease: configuration.claimLease,
                replicaAcknowledgements: configuration.redisWaitReplicas,
                replicaTimeout: configuration.redisWaitTimeout,
                maximumQueues: configuration.maximumQueues
            ),
            eventLoop: group.next(),
            logger: logger
        )
        // Services stop in reverse order after the HTTP server has drained: backend, then client.
        return buildApplication(
            configuration: configuration,
            backend: backend,
            services: [client, backend],
            logger: logger,
            metricsFactory: metricsFactory,
            metricsExposition: metricsExposition,
            tracing: tracing
        )
    }
    logger.notice("no Redis configured: queues live in this process's memory and are not shared or durable")
    let backend = MemoryQueueBackend(
        eventLoop: group.next(),
        claimLease: configuration.claimLease,
        maximumQueues: configuration.maximumQueues,
        logger: logger
    )
    return buildApplication(
        configuration: configuration,
        backend: backend,
        services: [backend],
        logger: logger,
        metricsFactory: metricsFactory,
        metricsExposition: metricsExposition,
        tracing: tracing
    )
}

/// The tracer and exporter of `OTEL_EXPORTER_OTLP_ENDPOINT`, or `nil` when tracing is off.
func makeTracingBackend(_ configuration: SkiffConfiguration, logger: Logger) -> TracingBackend? {
    guard let settings = configuration.tracing else { return nil }
    do {
        let backend = try TracingBackend(settings, replicaID: configuration.replicaID, logger: logger)
        logger.notice("tracing on: spans go over OTLP/HTTP", metadata: ["otel.endpoint": "\(settings.tracesEndpoint)"])
        return backend
    } catch {
        // The standard variables can turn it off (OTEL_SDK_DISABLED, OTEL_TRACES_EXPORTER=none)
        // or ask for what this build lacks (gRPC): serving goes on without spans, and says so.
        logger.error("tracing off: the OTEL_* settings do not make an OTLP/HTTP exporter", metadata: ["error": "\(error)"])
        return nil
    }
}

/// The store `settings` name. The configuration reader made the directory of a `file://` store.
func makePayloadStore(_ settings: PayloadSettings, logger: Logger) -> any PayloadStore {
    switch settings.location {
    case .directory(let path):
        do {
            return try FileSystemPayloadStore(
                root: path, maximumBodyBytes: settings.maximumMessageBytes, urlSigner: settings.urlSecret.map { PayloadURLSigner(secret: $0) })
        } catch {
            preconditionFailure("PAYLOADS_STORE: \(error)")
        }
    case .bucket(let bucket, let endpoint):
        let token: (@Sendable () async throws -> String)?
        let signer: GoogleCloudStorageURLSigner?
        if endpoint == nil {
            let tokens = GoogleAccessTokenSource(logger: logger)
            token = { try await tokens.accessToken() }
            signer = settings.signingServiceAccount.map { account in
                GoogleCloudStorageURLSigner.iamCredentials(serviceAccount: account, accessToken: { try await tokens.accessToken() }, logger: logger)
            }
        } else {
            token = nil
            signer = nil
        }
        let storage = GoogleCloudStorage(
            baseURL: endpoint ?? GoogleCloudStorage.productionBaseURL, bucket: bucket, accessToken: token, logger: logger)
        return GoogleCloudStoragePayloadStore(storage: storage, maximumBodyBytes: settings.maximumMessageBytes, urlSigner: signer, logger: logger)
    }
}

/// Assembles a replica around a given backend (tests use this to keep a handle on it).
public func buildApplication<Backend: QueueBackend>(
    configuration: SkiffConfiguration,
    backend: Backend,
    services: [any Service],
    logger: Logger,
    metricsFactory: any MetricsFactory = MetricsSystem.factory,
    metricsExposition: (any MetricsExposition)? = nil,
    payloadStore: (any PayloadStore)? = nil
) -> SkiffApplication {
    buildApplication(
        configuration: configuration, backend: backend, services: services, logger: logger, metricsFactory: metricsFactory,
        metricsExposition: metricsExposition, payloadStore: payloadStore, tracing: makeTracingBackend(configuration, logger: logger))
}

func buildApplication<Backend: QueueBackend>(
    configuration: SkiffConfiguration,
    backend: Backend,
    services: [any Service],
    logger: Logger,
    metricsFactory: any MetricsFactory = MetricsSystem.factory,
    metricsExposition: (any MetricsExposition)? = nil,
    payloadStore: (any PayloadStore)? = nil,
    tracing: TracingBackend?
) -> SkiffApplication {
    var configuration = configuration
    var services = services
    if let tracing {
        configuration.api.tracing = tracing.tracing
        // First, so that it stops last: the spans of the drain are exported too.
        services.insert(tracing.service, at: 0)
    }
    let settlements = SettlementTasks(logger: logger)
    // Partitioned queues (`partitions` in a queue's settings) on top of any backend, and large
    // bodies in the payload store on top of those.
    let backend = OffloadingQueues(
        PartitionedQueues(backend),
        offload: configuration.payloads.map { settings in
            PayloadOffload(
                store: payloadStore ?? makePayloadStore(settings, logger: logger),
                thresholdBytes: settings.thresholdBytes,
                maximumBodyBytes: settings.maximumMessageBytes,
                maximumHeldBytes: settings.maximumHeldBytes,
                maximumInlineBytes: configuration.api.largestInlineMessageBytes,
                retention: settings.retention
            )
        },
        maximumMessageBytes: configuration.api.maximumMessageBytes,
        settlements: settlements,
        logger: logger
    )
    let metrics = SkiffMetrics(factory: metricsFactory)
    let rateLimiter = configuration.rateLimit.map { RateLimiter(settings: $0) }
    let streams = StreamEndpoint(
        exchange: MessageExchange(backend: backend, settings: configuration.api, metrics: metrics, settlements: settlements),
        policy: AccessPolicy(keys: configuration.apiKeys, metricsRequireAuth: configuration.metricsRequireAuth),
        rateLimiter: rateLimiter,
        streams: ConnectionLimiter(maximum: configuration.maximumStreams),
        pingInterval: configuration.streamPingInterval,
        accessLog: configuration.accessLog
    )
    // One for the routes, the fast path and push delivery: they share its remembered
    // subscriptions and its merging of concurrent publishes.
    let topics = Topics.over(backend)
    let router = makeRouter(
        backend: backend,
        configuration: configuration,
        topics: topics,
        metricsFactory: metricsFactory,
        metricsExposition: metricsExposition,
        metrics: metrics,
        settlements: settlements,
        rateLimiter: rateLimiter,
        streams: streams
    )
    if let settings = configuration.payloads, let offload = backend.offload {
        services.append(PayloadSweeper(store: offload.store, retention: settings.retention, interval: settings.sweepInterval, logger: logger))
        services.append(PayloadGraveyardDrain(queues: backend, logger: logger))
    }
    // After the backend, so it stops before storage closes; it stops taking messages at once and
    // lets pushes under way finish.
    if configuration.push.enabled, let topics {
        services.append(
            PushDelivery(backend: backend, store: topics.store, configuration: configuration.push, logger: logger, metricsFactory: metricsFactory)
        )
    }
    // The per-queue gauges and each queue's history (the console's charts), from one stats read.
    let history = HistoryRounds(interval: configuration.queueHistoryInterval)
    services.append(
        QueueGaugeRefresher(metrics: metrics, interval: min(.seconds(15), history.interval), logger: logger) {
            try await QueueGaugeRefresher.snapshots(of: backend, historyInterval: history.isDue() ? history.interval : nil, logger: logger)
        }
    )
    if let metricsExposition {
        if let port = configuration.metricsPort {
            services.append(makeMetricsListener(port: port, exposition: metricsExposition, logger: logger))
        }
    }
    // Last, so it stops first: right after the HTTP server has drained, before storage closes.
    services.append(settlements)
    // The plain single-message POST and GET skip the router unless a rate limit applies: see
    // FastPathHandler.
    let limiter = ConnectionLimiter(maximum: configuration.maximumConnections)
    let (headTimeout, idleTimeout) = (configuration.requestHeadTimeout, configuration.idleTimeout)
    let makeGuard = { @Sendable in ConnectionGuard(limiter: limiter, headTimeout: headTimeout, idleTimeout: idleTimeout, logger: logger) }
    var connectionHandlers: @Sendable () -> ConnectionHandlers = { ConnectionHandlers(front: [makeGuard()]) }
    // With tracing on every request goes through the routes, where its server span is made.
    let fastPath = configuration.rateLimit == nil && configuration.fastPath && configuration.api.tracing == nil
    if fastPath {
        let settings = FastPathSettings(
            api: configuration.api,
            policy: AccessPolicy(keys: configuration.apiKeys, metricsRequireAuth: configuration.metricsRequireAuth),
            metrics: metrics,
            httpMetrics: HTTPMetrics(factory: metricsFactory),
            accessLog: configuration.accessLog,
            logger: logger,
            settlements: settlements,
            topics: topics
        )
        connectionHandlers = {
            let handler = FastPathHandler(backend: backend, settings: settings)
            return ConnectionHandlers(front: [makeGuard(), handler], behindStateHandler: [handler.makeRoutedResponseObserver()])
        }
    }
    return Application(
        router: router,
        server: .skiff(
            configuration: .init(
                additionalChannelHandlers: [ResponseFlushCoalescer(), ClientDepartureHandler()]
            ),
            streams: streams,
            connectionHandlers: connectionHandlers
        ),
        configuration: .init(address: .hostname(configuration.host, port: configuration.port), serverName: "skiff"),
        services: services,
        logger: logger
    )
}

/// The routes and middleware of a replica.
///
/// Middleware order, outermost first: the server span (tracing on), request id (so every later log line has it), access log
/// and HTTP metrics (they see the final status, errors included), JSON errors, then access
/// control and rate limiting, whose refusals are errors rendered by the JSON error middleware.
public func buildRouter<Backend: QueueBackend>(
    backend: Backend,
    configuration: SkiffConfiguration,
    metricsFactory: any MetricsFactory = MetricsSystem.factory,
    metricsExposition: (any MetricsExposition)? = nil,
    metrics: SkiffMetrics? = nil,
    settlements: SettlementTasks? = nil
) -> Router<SkiffRequestContext> {
    makeRouter(
        backend: backend,
        configuration: configuration,
        topics: Topics.over(backend),
        metricsFactory: metricsFactory,
        metricsExposition: metricsExposition,
        metrics: metrics,
        settlements: settlements
    )
}

/// ``buildRouter(backend:configuration:metricsFactory:metricsExposition:metrics:settlements:)``,
/// sharing the replica's rate limiter with its streams and answering declined stream upgrades.
func makeRouter<Backend: QueueBackend>(
    backend: Backend,
    configuration: SkiffConfiguration,
    topics: Topics?,
    metricsFactory: any MetricsFactory = MetricsSystem.factory,
    metricsExposition: (any MetricsExposition)? = nil,
    metrics: SkiffMetrics? = nil,
    settlements: SettlementTasks? = nil,
    rateLimiter: RateLimiter? = nil,
    streams: StreamEndpoint<Backend>? = nil
) -> Router<SkiffRequestContext> {
    let metrics = metrics ?? SkiffMetrics(factory: metricsFactory)
    let router = Router(context: SkiffRequestContext.self)
    if let tracing = configuration.api.tracing {
        router.add(middleware: RequestTracingMiddleware(tracing: tracing))
    }
    router.add(middleware: RequestIDMiddleware())
    if configuration.accessLog {
        router.add(middleware: AccessLogMiddleware())
    }
    router.add(middleware: HTTPMetricsMiddleware(factory: metricsFactory))
    router.add(middleware: JSONErrorMiddleware())
    let policy = AccessPolicy(keys: configuration.apiKeys, metricsRequireAuth: configuration.metricsRequireAuth)
    router.add(middleware: AccessControlMiddleware(policy: policy))
    // One limiter for requests and stream frames alike.
    if let limiter = rateLimiter ?? configuration.rateLimit.map({ RateLimiter(settings: $0) }) {
        router.add(middleware: RateLimitMiddleware(limiter: limiter, metricsRequireAuth: configuration.metricsRequireAuth))
    }
    QueueController<Backend>(backend: backend, settings: configuration.api, metrics: metrics, settlements: settlements).addRoutes(to: router)
    QueueAdminController<Backend>(backend: backend, historyInterval: configuration.queueHistoryInterval).addRoutes(to: router)
    ConsoleController().addRoutes(to: router)
    // The links `payload=url` receives hand out, for a filesystem store (Cloud Storage serves its own).
    if let store = (backend as? OffloadingQueues)?.offload?.store as? FileSystemPayloadStore, let signer = store.urlSigner {
        PayloadLinkController(store: store, signer: signer).addRoutes(to: router)
    }
    let streams =
        streams
        ?? StreamEndpoint(
            exchange: MessageExchange(backend: backend, settings: configuration.api, metrics: metrics, settlements: settlements),
            policy: policy,
            rateLimiter: rateLimiter,
            streams: ConnectionLimiter(maximum: configuration.maximumStreams),
            pingInterval: configuration.streamPingInterval,
            accessLog: configuration.accessLog
        )
    StreamController(streams: streams).addRoutes(to: router)
    EventStreamController(endpoint: streams).addRoutes(to: router)
    TopicController(
        topics: topics,
        settings: configuration.api,
        metrics: metrics,
        push: configuration.push,
        settingsStore: backend
    ).addRoutes(to: router)
    HealthController<Backend>(backend: backend, replicaID: configuration.replicaID).addRoutes(to: router)
    if let metricsExposition {
        MetricsController(exposition: metricsExposition).addRoutes(to: router)
    }
    return router
}

/// The listener of `METRICS_PORT`: `GET /metrics` with no key, on 127.0.0.1 only, so that only a
/// process in the same host (or Cloud Run instance) reaches it; nothing else is served there.
func makeMetricsListener(port: Int, exposition: any MetricsExposition, logger: Logger) -> some ApplicationProtocol {
    let router = Router(context: SkiffRequestContext.self)
    MetricsController(exposition: exposition).addRoutes(to: router)
    return Application(
        router: router,
        configuration: .init(address: .hostname("127.0.0.1", port: port), serverName: "skiff-metrics"),
        logger: logger
    )
}
