import Hummingbird
import Logging
import NIOCore
import NIOPosix
import ServiceLifecycle
import SkiffQueue
import SkiffRedis

public typealias SkiffApplication = Application<RouterResponder<SkiffRequestContext>>

/// Assembles a replica from its configuration: Redis when configured, memory otherwise.
public func buildApplication(configuration: SkiffConfiguration, logger: Logger) -> SkiffApplication {
    let group = MultiThreadedEventLoopGroup.singleton
    if let redisConfiguration = configuration.redis {
        let client = RedisClient(configuration: redisConfiguration, eventLoopGroup: group, logger: logger)
        let backend = RedisQueueBackend(
            client: client,
            configuration: RedisQueueConfiguration(
                keyPrefix: configuration.keyPrefix,
                claimLease: configuration.claimLease,
                replicaAcknowledgements: configuration.redisWaitReplicas,
                replicaTimeout: configuration.redisWaitTimeout
            ),
            eventLoop: group.next(),
            logger: logger
        )
        // Services stop in reverse order after the HTTP server has drained: backend, then client.
        return buildApplication(configuration: configuration, backend: backend, services: [client, backend], logger: logger)
    }
    logger.notice("no Redis configured: queues live in this process's memory and are not shared or durable")
    let backend = MemoryQueueBackend(eventLoop: group.next(), claimLease: configuration.claimLease, logger: logger)
    return buildApplication(configuration: configuration, backend: backend, services: [backend], logger: logger)
}

/// Assembles a replica around a given backend (tests use this to keep a handle on it).
public func buildApplication<Backend: QueueBackend>(
    configuration: SkiffConfiguration,
    backend: Backend,
    services: [any Service],
    logger: Logger
) -> SkiffApplication {
    let router = buildRouter(backend: backend, configuration: configuration)
    return Application(
        router: router,
        server: .http1(configuration: .init(additionalChannelHandlers: [ClientDepartureHandler()])),
        configuration: .init(address: .hostname(configuration.host, port: configuration.port), serverName: "skiff"),
        services: services,
        logger: logger
    )
}

/// The routes and middleware of a replica.
public func buildRouter<Backend: QueueBackend>(backend: Backend, configuration: SkiffConfiguration) -> Router<SkiffRequestContext> {
    let router = Router(context: SkiffRequestContext.self)
    router.add(middleware: RequestIDMiddleware())
    router.add(middleware: JSONErrorMiddleware())
    QueueController<Backend>(backend: backend, settings: configuration.api).addRoutes(to: router)
    QueueAdminController<Backend>(backend: backend).addRoutes(to: router)
    HealthController<Backend>(backend: backend, replicaID: configuration.replicaID).addRoutes(to: router)
    return router
}
