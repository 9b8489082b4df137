import Logging
import NIOCore
import NIOPosix
import ServiceLifecycle
import SkiffQueue
import SkiffRedis
import SkiffTestSupport
import Synchronization
import Testing

/// The backends the contract suite runs against: memory always, Redis whenever the harness
/// provides one (always under `make test`).
enum BackendKind: String, CaseIterable, CustomTestStringConvertible, Sendable {
    case memory
    case redis

    var testDescription: String { rawValue }

    static var available: [BackendKind] { TestEnvironment.hasRedis ? allCases : [.memory] }
}

/// A running backend plus the services it needs, torn down by `close()`.
final class BackendFixture: Sendable {
    let backend: any QueueBackend
    /// For the Redis kind: more replicas sharing the same Redis.
    let replicas: [any QueueBackend]
    private let tasks: [Task<Void, Never>]
    private let clients: [RedisClient]
    let recover: @Sendable () async -> Void

    private init(backend: any QueueBackend, replicas: [any QueueBackend], tasks: [Task<Void, Never>], clients: [RedisClient], recover: @escaping @Sendable () async -> Void) {
        self.backend = backend
        self.replicas = replicas
        self.tasks = tasks
        self.clients = clients
        self.recover = recover
    }

    static func make(_ kind: BackendKind, replicas count: Int = 1, claimLease: Duration = .seconds(30)) async throws -> BackendFixture {
        let logger = Logger(label: "test")
        let group = MultiThreadedEventLoopGroup.singleton
        switch kind {
        case .memory:
            let backend = MemoryQueueBackend(eventLoop: group.next(), claimLease: claimLease, logger: logger)
            return BackendFixture(backend: backend, replicas: [backend], tasks: [], clients: [], recover: { backend.recoverExpiredClaims() })
        case .redis:
            var configuration = try RedisConfiguration(url: try #require(TestEnvironment.redisURL))
            // Generous: dozens of tests share two cores. Deadlines have tests of their own.
            configuration.commandTimeout = .seconds(5)
            configuration.connectTimeout = .seconds(5)
            var backends: [RedisQueueBackend] = []
            var tasks: [Task<Void, Never>] = []
            var clients: [RedisClient] = []
            for _ in 0..<count {
                let client = RedisClient(configuration: configuration, eventLoopGroup: group, logger: logger)
                let backend = RedisQueueBackend(
                    client: client,
                    configuration: RedisQueueConfiguration(claimLease: claimLease),
                    eventLoop: group.next(),
                    logger: logger
                )
                tasks.append(Task { try? await backend.run() })
                clients.append(client)
                backends.append(backend)
            }
            let first = backends[0]
            return BackendFixture(
                backend: first,
                replicas: backends,
                tasks: tasks,
                clients: clients,
                recover: { await first.recoverExpiredClaims() }
            )
        }
    }

    func close() {
        for task in tasks { task.cancel() }
        for client in clients { client.close() }
    }
}

extension QueueBackend {
    func send(_ text: String, to queue: QueueName) async throws -> SentMessage {
        try await send(ByteBuffer(string: text), to: queue)
    }

    /// Receives and completes, like an auto-acknowledging GET.
    func take(from queue: QueueName, timeout: Duration = .zero) async throws -> String? {
        guard let delivery = try await receive(from: queue, timeout: timeout) else { return nil }
        try await complete(delivery)
        return String(buffer: delivery.message.body)
    }
}

func uniqueQueue(_ prefix: String = "q") -> QueueName {
    QueueName(TestEnvironment.uniqueName(prefix))!
}

/// A mutex that escaping closures can share.
final class LockedBox<Value: Sendable>: Sendable {
    let value: Mutex<Value>
    init(_ value: Value) { self.value = Mutex(value) }
}
