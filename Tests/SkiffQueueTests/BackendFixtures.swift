import Logging
import NIOCore
import NIOPosix
import ServiceLifecycle
import SkiffQueue
import SkiffRedis
import SkiffRedisQueue
import SkiffTestSupport
import Synchronization
import Testing

/// A running backend plus the services it needs, torn down by `close()`.
final class BackendFixture: Sendable {
    let backend: any ClaimingBackend
    /// For the Redis kind: more replicas sharing the same Redis.
    let replicas: [any ClaimingBackend]
    private let tasks: [Task<Void, Never>]
    private let clients: [RedisClient]
    /// One maintenance round (lease recovery, due delays, expiry) on the first replica.
    let recover: @Sendable () async -> Void
    /// One maintenance round per replica, to run them against each other.
    let sweeps: [@Sendable () async -> Void]
    /// The memory backend's wall clock, which tests can move forward to age messages; `nil` for
    /// Redis, whose clock is the server's `TIME`.
    let wallClock: TestWallClock?

    private init(
        backend: any ClaimingBackend,
        replicas: [any ClaimingBackend],
        tasks: [Task<Void, Never>],
        clients: [RedisClient],
        sweeps: [@Sendable () async -> Void],
        wallClock: TestWallClock?
    ) {
        self.backend = backend
        self.replicas = replicas
        self.tasks = tasks
        self.clients = clients
        self.recover = sweeps[0]
        self.sweeps = sweeps
        self.wallClock = wallClock
    }

    /// - Parameters:
    ///   - backgroundMaintenance: `false` leaves the memory backend's maintenance to the test
    ///     (`recover`), to observe what happens before a sweep; the Redis replicas always run.
    ///   - redisURL: a Redis of the test's own instead of the shared one (Redis kinds).
    ///   - sweepInterval: how often the Redis replicas' maintenance runs (at most a quarter of the
    ///     lease).
    ///   - keyPrefix: Redis keys of the test's own, out of sight of the replicas other tests run
    ///     (which sample every queue they see, for instance).
    static func make(
        _ kind: BackendKind,
        replicas count: Int = 1,
        claimLease: Duration = .seconds(30),
        backgroundMaintenance: Bool = true,
        redisURL: String? = nil,
        sweepInterval: Duration = .seconds(1),
        keyPrefix: String = "skiff"
    ) async throws -> BackendFixture {
        let logger = Logger(label: "test")
        let group = MultiThreadedEventLoopGroup.singleton
        switch kind {
        case .memory:
            let clock = TestWallClock()
            let backend = MemoryQueueBackend(eventLoop: group.next(), claimLease: claimLease, wallClock: { clock.now() }, logger: logger)
            let tasks: [Task<Void, Never>] = backgroundMaintenance ? [Task { _ = try? await backend.run() }] : []
            // One process: "replicas" are the same backend, swept as often as there would be replicas.
            let sweeps = Array(repeating: { @Sendable () async in backend.maintain() }, count: max(count, 1))
            return BackendFixture(backend: backend, replicas: [backend], tasks: tasks, clients: [], sweeps: sweeps, wallClock: clock)
        case .redis, .redisCluster:
            var configuration = try RedisConfiguration(url: try #require(redisURL ?? kind.redisURL))
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
                    configuration: RedisQueueConfiguration(keyPrefix: keyPrefix, claimLease: claimLease, sweepInterval: sweepInterval),
                    eventLoop: group.next(),
                    logger: logger
                )
                tasks.append(Task { try? await backend.run() })
                clients.append(client)
                backends.append(backend)
            }
            return BackendFixture(
                backend: backends[0],
                replicas: backends,
                tasks: tasks,
                clients: clients,
                sweeps: backends.map { backend in { @Sendable () async in _ = await backend.recoverExpiredClaims() } },
                wallClock: nil
            )
        }
    }

    func close() {
        for task in tasks { task.cancel() }
        for client in clients { client.close() }
    }
}

extension ClaimingBackend {
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

/// Real time plus an offset that only moves forward: messages age without the test waiting.
final class TestWallClock: Sendable {
    private let offsetMilliseconds = Mutex<Int64>(0)
    /// Set by ``freeze()``: the instant the clock stays at (plus what ``advance(by:)`` adds).
    private let frozenAt = Mutex<Int64?>(nil)

    func now() -> Int64 { (frozenAt.withLock { $0 } ?? MessageID.currentMilliseconds()) + offsetMilliseconds.withLock { $0 } }

    func advance(by milliseconds: Int64) { offsetMilliseconds.withLock { $0 += milliseconds } }

    /// Stops real time from moving the clock: only ``advance(by:)`` does from now on, so a test
    /// that counts steps is not thrown off by a second boundary passing (or a stalled machine).
    func freeze() { frozenAt.withLock { $0 = $0 ?? MessageID.currentMilliseconds() } }
}

func uniqueQueue(_ prefix: String = "q") -> QueueName {
    QueueName(TestEnvironment.uniqueName(prefix))!
}

/// A mutex that escaping closures can share.
final class LockedBox<Value: Sendable>: Sendable {
    let value: Mutex<Value>
    init(_ value: Value) { self.value = Mutex(value) }
}
