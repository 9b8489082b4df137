import Logging
import NIOCore
import NIOPosix
import SkiffRedis
import SkiffTestSupport
import Testing

@testable import SkiffQueue

/// The claim a new waiter makes is skipped only when nothing was published since the claim that
/// found its queue empty (``RedisQueueBackend/WakeToken``).
@Suite("Redis wake-ups", .enabled(if: TestEnvironment.hasRedis), .timeLimit(.minutes(1)))
struct RedisWakeUpTests {
    @Test func aWakeUpThatArrivedBeforeTheWaiterRegisteredIsNotMissed() async throws {
        let logger = Logger(label: "test")
        var configuration = try RedisConfiguration(url: try #require(TestEnvironment.redisURL))
        // Generous: dozens of tests share two cores.
        configuration.commandTimeout = .seconds(5)
        configuration.connectTimeout = .seconds(5)
        let client = RedisClient(configuration: configuration, eventLoopGroup: MultiThreadedEventLoopGroup.singleton, logger: logger)
        defer { client.close() }
        // No safety sweep within the test: only a wake-up or the waiter's own claim can deliver.
        let backend = RedisQueueBackend(
            client: client,
            configuration: RedisQueueConfiguration(sweepInterval: .seconds(60)),
            eventLoop: MultiThreadedEventLoopGroup.singleton.next(),
            logger: logger
        )
        let running = Task { try? await backend.run() }
        defer { running.cancel() }
        let queue = uniqueQueue("wake")
        // A first waiter subscribes the replica to the queue's wake-ups, as in steady use.
        let first = Task { try await backend.take(from: queue, timeout: .seconds(20)) }
        var confirmed = backend.wakeToken(for: queue)
        for _ in 0..<1_000 where confirmed == nil {
            try await Task.sleep(for: .milliseconds(10))
            confirmed = backend.wakeToken(for: queue)
        }
        try #require(confirmed != nil)
        _ = try await backend.send("first", to: queue)
        #expect(try await first.value == "first")
        // Let that send's wake-up arrive, if it has not yet.
        try await Task.sleep(for: .milliseconds(300))

        // The token a claim that found the queue empty takes; then a message is sent, and its
        // wake-up arrives (and finds no waiter) before the waiter registers.
        let token = try #require(backend.wakeToken(for: queue))
        _ = try await backend.send("sent meanwhile", to: queue)
        for _ in 0..<400 where backend.wakeToken(for: queue) == token { try await Task.sleep(for: .milliseconds(5)) }
        #expect(backend.wakeToken(for: queue) != token)
        let delivered = try await backend.wait(for: queue, timeout: .seconds(3), mode: .autoAcknowledge, quietSince: token)
        let delivery = try #require(delivered.first)
        #expect(String(buffer: delivery.message.body) == "sent meanwhile")
        try await backend.complete(delivery)
    }
}
