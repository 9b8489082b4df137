import Logging
import NIOCore
import NIOPosix
import SkiffRedis
import SkiffTestSupport
import Testing

@testable import SkiffQueue
@testable import SkiffRedisQueue

/// The claim a new waiter makes is skipped only when nothing was published since the claim that
/// found its queue empty (``RedisQueueBackend/WakeToken``).
@Suite("Redis wake-ups", .enabled(if: TestEnvironment.hasRedis), .timeLimit(.minutes(1)))
struct RedisWakeUpTests {
    /// A backend with no safety sweep within a test (only a wake-up or a claim can deliver), and a
    /// queue whose wake-ups it is subscribed to, as in steady use: one message was sent and taken
    /// by a waiter, and its wake-up has arrived.
    private struct Subscribed {
        let client: RedisClient
        let backend: RedisQueueBackend
        let running: Task<Void, Never>
        let queue: QueueName

        static func make(_ logger: Logger = Logger(label: "test")) async throws -> Subscribed {
            var configuration = try RedisConfiguration(url: try #require(TestEnvironment.redisURL))
            // Generous: dozens of tests share two cores.
            configuration.commandTimeout = .seconds(5)
            configuration.connectTimeout = .seconds(5)
            let client = RedisClient(configuration: configuration, eventLoopGroup: MultiThreadedEventLoopGroup.singleton, logger: logger)
            let backend = RedisQueueBackend(
                client: client,
                configuration: RedisQueueConfiguration(sweepInterval: .seconds(60)),
                eventLoop: MultiThreadedEventLoopGroup.singleton.next(),
                logger: logger
            )
            let running = Task { _ = try? await backend.run() }
            let queue = uniqueQueue("wake")
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
            return Subscribed(client: client, backend: backend, running: running, queue: queue)
        }

        func close() {
            running.cancel()
            client.close()
        }

        /// Puts a message in the ready list behind the scripts' back: no wake-up is published.
        func pushUnannounced(_ body: String) async throws {
            let envelope = "2|\(Int.random(in: 1_000...9_999))|01UNANNOUNCED\(body)|\(MessageID.currentMilliseconds())|0|0|0|0|0|\(body)"
            _ = try await client.send("RPUSH", .string("skiff:{\(queue.rawValue)}:ready"), .string(envelope))
        }
    }

    @Test func aWakeUpThatArrivedBeforeTheWaiterRegisteredIsNotMissed() async throws {
        let subscribed = try await Subscribed.make()
        defer { subscribed.close() }
        let (backend, queue) = (subscribed.backend, subscribed.queue)

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

    /// After a claim emptied the queue, a consumer that arrives before anything is published waits
    /// without a claim of its own (seen here through a message no wake-up announces, which only a
    /// claim can find), and the next wake-up, from any replica, reaches it.
    @Test func aConsumerArrivingAtAQueueKnownEmptyWaitsWithoutAClaim() async throws {
        let subscribed = try await Subscribed.make()
        defer { subscribed.close() }
        let (backend, queue) = (subscribed.backend, subscribed.queue)
        // A poll finds the queue empty: from now on it is known empty.
        #expect(try await backend.take(from: queue) == nil)
        try await subscribed.pushUnannounced("hidden")
        #expect(try await backend.take(from: queue, timeout: .milliseconds(300)) == nil)
        // A poll with no timeout always claims: it finds the message.
        #expect(try await backend.take(from: queue) == "hidden")

        // The poll emptied the queue again; a consumer now waits, and a message sent through
        // another replica (another client and backend on the same Redis) wakes it.
        let other = try await BackendFixture.make(.redis)
        defer { other.close() }
        let waiting = Task { try await backend.take(from: queue, timeout: .seconds(10)) }
        try await Task.sleep(for: .milliseconds(200))
        _ = try await other.backend.send("from the other replica", to: queue)
        #expect(try await waiting.value == "from the other replica")

        // A wake-up arrived since the last claim that emptied the queue: the next consumer claims.
        try await Task.sleep(for: .milliseconds(200))
        try await subscribed.pushUnannounced("found")
        #expect(try await backend.take(from: queue, timeout: .seconds(3)) == "found")
    }
}
