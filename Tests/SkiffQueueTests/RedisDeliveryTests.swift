import Logging
import NIOCore
import NIOPosix
import SkiffQueue
import SkiffRedis
import SkiffRedisQueue
import SkiffTestSupport
import Testing

/// Redis-only behaviour of the delivery rules: retention (aged by rewriting stored envelopes,
/// since the shortest retention is a minute) and stored data from older versions.
@Suite("Redis delivery", .enabled(if: TestEnvironment.hasRedis), .timeLimit(.minutes(2)))
struct RedisDeliveryTests {
    private func rawClient() throws -> RedisClient {
        var configuration = try RedisConfiguration(url: try #require(TestEnvironment.redisURL))
        // Generous: dozens of tests share two cores.
        configuration.commandTimeout = .seconds(5)
        configuration.connectTimeout = .seconds(5)
        return RedisClient(configuration: configuration, eventLoopGroup: MultiThreadedEventLoopGroup.singleton, logger: Logger(label: "test"))
    }

    /// Rewrites the `enqueuedAt` of the ready messages at `indexes` to `ageMilliseconds` ago, then
    /// marks the queue due for the retention sweep, as if that time had passed.
    ///
    /// One script, so it is atomic: a sweep (the backends of other tests run theirs on timers) that
    /// ran between two rewrites would pop an aged head and shift the indexes under the next one.
    private func age(_ queue: QueueName, indexes: [Int], by ageMilliseconds: Int64, client: RedisClient) async throws {
        let script = """
            for i = 3, #ARGV do
              local index = tonumber(ARGV[i])
              local envelope = redis.call('LINDEX', KEYS[1], index)
              local head, rest = string.match(envelope, '^(%d|%d+|[^|]+|)%d+(|.*)$')
              redis.call('LSET', KEYS[1], index, head .. ARGV[1] .. rest)
            end
            redis.call('ZADD', KEYS[2], 0, ARGV[2])
            """
        var arguments: [RedisArgument] = [.string(script), .integer(2)]
        arguments += [.string("skiff:{\(queue.rawValue)}:ready"), .string("skiff:retention-index")]
        arguments += [.integer(MessageID.currentMilliseconds() - ageMilliseconds), .string(queue.rawValue)]
        arguments += indexes.map { .integer(Int64($0)) }
        _ = try await client.send(RedisCommand("EVAL", arguments))
    }

    /// A Redis backend with a raw client beside it, and a queue whose retention is `retention`.
    private func retentionFixture(retention: Int64) async throws -> (BackendFixture, RedisQueueBackend, RedisClient, QueueName) {
        let fixture = try await BackendFixture.make(.redis)
        let backend = try #require(fixture.backend as? RedisQueueBackend)
        let queue = uniqueQueue()
        var settings = QueueSettings()
        settings.retentionMilliseconds = retention
        try await backend.updateSettings(settings, of: queue)
        return (fixture, backend, try rawClient(), queue)
    }

    @Test func messagesPastRetentionAreRemovedCountedAndNeverDelivered() async throws {
        let (fixture, backend, client, queue) = try await retentionFixture(retention: 3_600_000)
        defer {
            client.close()
            fixture.close()
        }
        for index in 0..<4 { _ = try await backend.send("\(index)", to: queue) }
        try await age(queue, indexes: [0, 1], by: 3_600_001, client: client)

        // The sweep (this one, or the backend's own timer) removes expired heads.
        await backend.removeExpiredMessages()
        #expect(try await backend.stats(of: queue).totals.expired == 2)
        #expect(try await backend.stats(of: queue).ready == 2)
        // An expired message the sweep has not reached is dropped by the claim instead.
        // (The backend's own sweep may run meanwhile: either way "2" is never delivered.)
        try await age(queue, indexes: [0], by: 3_600_000, client: client)
        #expect(try await backend.take(from: queue) == "3")
        let stats = try await backend.stats(of: queue)
        #expect(stats.totals.expired == 3)
        #expect(stats.ready == 0)
        #expect(try await backend.take(from: queue) == nil)
    }

    @Test func aVisibilityTimeoutThatExpiresPastRetentionExpiresTheMessage() async throws {
        let (fixture, backend, client, queue) = try await retentionFixture(retention: 60_000)
        defer {
            client.close()
            fixture.close()
        }
        _ = try await backend.send("old", to: queue)
        // 3 s short of retention: room for a loaded machine between here and the claim.
        try await age(queue, indexes: [0], by: 57_000, client: client)
        let delivery = try #require(try await backend.receive(from: queue, max: 1, timeout: .zero, mode: .acknowledge(visibilityTimeout: .seconds(4))).first)
        #expect(delivery.message.receiveCount == 1)
        try await Task.sleep(for: .milliseconds(4200))
        // This sweep, or the backend's own: the expired lease is a failed receive past retention.
        await backend.recoverExpiredClaims()
        #expect(try await backend.stats(of: queue).totals.expired == 1)
        #expect(try await backend.take(from: queue) == nil)
    }

    @Test func theLastMinuteCountsEventsOnceTheir10SecondBucketCloses() async throws {
        let fixture = try await BackendFixture.make(.redis)
        defer { fixture.close() }
        let backend = fixture.backend
        let queue = uniqueQueue()
        for index in 0..<3 { _ = try await backend.send("\(index)", to: queue) }
        #expect(try await backend.take(from: queue) == "0")
        // The buckets are Redis-clock tens of seconds; wait until the one holding these events closed.
        let sentAt = MessageID.currentMilliseconds()
        let closes = (sentAt / 10_000 + 1) * 10_000
        try await Task.sleep(for: .milliseconds(closes - sentAt + 300))
        let stats = try await backend.stats(of: queue)
        #expect(stats.lastMinute.enqueued == 3)
        #expect(stats.lastMinute.delivered == 1)
        #expect(stats.lastMinute.acknowledged == 1)
        #expect(stats.totals.enqueued == 3)
    }

    @Test func envelopesStoredByTheFirstVersionAreStillDelivered() async throws {
        let fixture = try await BackendFixture.make(.redis)
        defer { fixture.close() }
        let client = try rawClient()
        defer { client.close() }
        let queue = uniqueQueue()
        let now = MessageID.currentMilliseconds()
        _ = try await client.send("RPUSH", .string("skiff:{\(queue.rawValue)}:ready"), .string("1|7|01OLDFORMAT|\(now)|0|0|{\"v\":1}"))
        let delivery = try #require(try await fixture.backend.receive(from: queue, timeout: .zero))
        #expect(delivery.message.id == "01OLDFORMAT")
        #expect(String(buffer: delivery.message.body) == #"{"v":1}"#)
        #expect(delivery.message.receiveCount == 1)
        #expect(try await fixture.backend.complete(delivery))
    }

    @Test func aDelayedMessageOnOneReplicaIsDeliveredToAWaiterOnAnother() async throws {
        let fixture = try await BackendFixture.make(.redis, replicas: 2)
        defer { fixture.close() }
        let queue = uniqueQueue()
        let waiting = Task { try await fixture.replicas[1].take(from: queue, timeout: .seconds(20)) }
        let sent = ContinuousClock.now
        _ = try await fixture.replicas[0].send(ByteBuffer(string: "later"), to: queue, options: SendOptions(delay: .milliseconds(300)))
        #expect(try await waiting.value == "later")
        #expect(ContinuousClock.now - sent >= .milliseconds(300))
    }
}
