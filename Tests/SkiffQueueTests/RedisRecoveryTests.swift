import Logging
import NIOCore
import NIOPosix
import SkiffRedis
import SkiffTestSupport
import Testing

@testable import SkiffQueue
@testable import SkiffRedisQueue

/// Returning claims costs O(claims), whatever the queue's depth and its messages' size: one run
/// of the recovery script is bounded in claims and bytes, and returns keep their order.
@Suite("Redis recovery", .enabled(if: TestEnvironment.hasRedis), .timeLimit(.minutes(2)))
struct RedisRecoveryTests {
    /// A backend on a key prefix of its own whose maintenance never runs on its own, so every
    /// recovery run here is the test's.
    private func isolatedBackend() throws -> (RedisQueueBackend, RedisClient, String) {
        var configuration = try RedisConfiguration(url: try #require(TestEnvironment.redisURL))
        configuration.commandTimeout = .seconds(5)
        configuration.connectTimeout = .seconds(5)
        let client = RedisClient(configuration: configuration, eventLoopGroup: MultiThreadedEventLoopGroup.singleton, logger: Logger(label: "test"))
        let prefix = TestEnvironment.uniqueName("recovery")
        let backend = RedisQueueBackend(
            client: client,
            configuration: RedisQueueConfiguration(keyPrefix: prefix, claimLease: .seconds(30)),
            eventLoop: MultiThreadedEventLoopGroup.singleton.next(),
            logger: Logger(label: "test")
        )
        return (backend, client, prefix)
    }

    /// One run of `recover` on `queue`: `{returned, more}`.
    private func recoverOnce(_ client: RedisClient, prefix: String, queue: QueueName) async throws -> (returned: Int, more: Bool) {
        let script = RedisQueueScripts.recover
        let reply = try await client.send(
            RedisCommand(
                "EVAL",
                [
                    .string(script.source), .integer(0), .string(prefix), .string(queue.rawValue),
                    .integer(Int64(RedisQueueBackend.recoveryClaimsPerRun)), .integer(Int64(RedisQueueBackend.recoveryBytesPerRun)),
                ]
            )
        )
        let values = try #require(reply.array)
        return (Int(try #require(values[0].integer)), values[1].integer == 1)
    }

    @Test func aCrashedBatchConsumersClaimsComeBackInShortRunsAndInOrder() async throws {
        let (backend, client, prefix) = try isolatedBackend()
        defer { client.close() }
        let queue = uniqueQueue()
        // 300 messages of 16 KiB: 4.7 MiB, held by one batch consumer that vanishes.
        let filler = String(repeating: "z", count: 16 << 10)
        let bodies = (0..<300).map { ByteBuffer(string: #""\#($0)-\#(filler)""#) }
        _ = try await backend.send(bodies, to: queue, options: SendOptions())
        var held: [Delivery] = []
        while held.count < 300 {
            held += try await backend.receive(from: queue, max: 300 - held.count, timeout: .zero, mode: .acknowledge(visibilityTimeout: .milliseconds(50)))
        }
        try await Task.sleep(for: .milliseconds(150))

        // Each run stops at its byte budget (a few dozen of these messages), and says more is due.
        var runs: [Int] = []
        while true {
            let run = try await recoverOnce(client, prefix: prefix, queue: queue)
            runs.append(run.returned)
            #expect(run.returned <= RedisQueueBackend.recoveryClaimsPerRun)
            #expect(run.returned * (16 << 10) <= RedisQueueBackend.recoveryBytesPerRun + (17 << 10))
            if !run.more { break }
            try #require(runs.count < 100)
        }
        #expect(runs.reduce(0, +) == 300)
        #expect(runs.count >= 300 * (16 << 10) / RedisQueueBackend.recoveryBytesPerRun)

        // Back at the head in their original order, after those returned earlier, before the rest.
        _ = try await backend.send([ByteBuffer(string: #""later""#)], to: queue, options: SendOptions())
        var order: [String] = []
        while order.count < 301 {
            let got = try await backend.receive(from: queue, max: 301 - order.count, timeout: .zero, mode: .autoAcknowledge)
            try #require(!got.isEmpty)
            for delivery in got {
                let text = String(buffer: delivery.message.body).dropFirst()
                order.append(String(text.prefix(while: { $0 != "-" && $0 != "\"" })))
                try await backend.complete(delivery)
            }
        }
        #expect(order == (0..<300).map(String.init) + ["later"])
    }

    /// Returns from separate releases interleave by original order, and the index that places them
    /// follows claims, expiry and purge (a stale index would misplace the next return).
    @Test func separateReturnsKeepTheirOriginalOrderAcrossClaimsInBetween() async throws {
        let (backend, client, _) = try isolatedBackend()
        defer { client.close() }
        let queue = uniqueQueue()
        _ = try await backend.send((0..<10).map { ByteBuffer(string: "\($0)") }, to: queue, options: SendOptions())
        let claimed = try await backend.receive(from: queue, max: 10, timeout: .zero, mode: .acknowledge(visibilityTimeout: .seconds(60)))
        #expect(claimed.count == 10)
        // Returned out of order, in three steps, with claims of returned messages in between.
        for index in [7, 3, 9] { try await backend.release(claimed[index]) }
        let first = try #require(try await backend.receive(from: queue, max: 1, timeout: .zero, mode: .acknowledge(visibilityTimeout: .seconds(60))).first)
        #expect(String(buffer: first.message.body) == "3")
        for index in [0, 5] { try await backend.release(claimed[index]) }
        try await backend.release(first)
        for index in [8, 1] { try await backend.release(claimed[index]) }
        let order = try await backend.receive(from: queue, max: 10, timeout: .zero, mode: .autoAcknowledge).map { String(buffer: $0.message.body) }
        #expect(order == ["0", "1", "3", "5", "7", "8", "9"])
        for delivery in try await backend.receive(from: queue, max: 10, timeout: .zero, mode: .autoAcknowledge) { try await backend.complete(delivery) }
        try await backend.purge(queue)
        // After a purge the index starts empty: a return goes to the head.
        _ = try await backend.send((0..<3).map { ByteBuffer(string: "p\($0)") }, to: queue, options: SendOptions())
        let again = try await backend.receive(from: queue, max: 1, timeout: .zero, mode: .acknowledge(visibilityTimeout: .seconds(60)))
        try await backend.release(again[0])
        #expect(
            try await backend.receive(from: queue, max: 3, timeout: .zero, mode: .autoAcknowledge).map { String(buffer: $0.message.body) } == [
                "p0", "p1", "p2",
            ])
    }

    /// A queue's visibility timeout stored before its 100 ms floor existed reads as the floor,
    /// in the scripts' leases and in the settings a GET shows (so a PUT of them back is valid).
    @Test func aVisibilityTimeoutStoredBelowTheFloorActsAsTheFloor() async throws {
        let (backend, client, _) = try isolatedBackend()
        defer { client.close() }
        let queue = uniqueQueue()
        _ = try await backend.send("m", to: queue)
        let config = backend.keys(queue).config
        _ = try await client.send(RedisCommand("HSET", .string(config), "visibilityTimeoutMs", "5"), slotKey: config)
        let settings = try await backend.settings(of: queue)
        #expect(settings.visibilityTimeoutMilliseconds == QueueSettings.minimumReceiveVisibilityMilliseconds)
        #expect(throws: Never.self) { try settings.validate(for: queue) }
        // Redis's clock before the claim: the lease ends at least the floor after it.
        let time = try #require(try await client.send(RedisCommand("TIME"), slotKey: config).array)
        let before = try #require(time.first?.string.flatMap { Int64($0) }) * 1000 + (try #require(time.last?.string.flatMap { Int64($0) })) / 1000
        let claimed = try #require(try await backend.receive(from: queue, max: 1, timeout: .zero, mode: .acknowledge(visibilityTimeout: nil)).first)
        let leases = String(config.dropLast("config".count)) + "leases"
        let score = try await client.send(RedisCommand("ZSCORE", .string(leases), .string(claimed.message.id)), slotKey: config)
        let expiresAt = try #require(score.string.flatMap { Double($0) })
        #expect(Int64(expiresAt) >= before + QueueSettings.minimumReceiveVisibilityMilliseconds)
    }

    /// Every script file compiles in Redis as loaded (library, placeholders filled, flags), and
    /// the library's defaults are the Swift ones.
    @Test func everyScriptFileLoadsIntoRedis() async throws {
        let (_, client, _) = try isolatedBackend()
        defer { client.close() }
        #expect(RedisQueueScripts.all.count == 36)
        for script in RedisQueueScripts.all {
            let reply = try await client.send(RedisCommand("SCRIPT", [.string("LOAD"), .string(script.source)]))
            #expect(reply.string?.utf8.count == 40, "\(script.name): \(reply)")
            #expect(!script.source.contains("{{"))
        }
        #expect(RedisQueueScripts.library.contains("or \(QueueSettings().visibilityTimeoutMilliseconds),"))
    }

    /// A queue whose whole backlog passed retention is emptied in runs of at most 1000 removals,
    /// each saying whether more is due, and the sweep repeats until none is.
    @Test func aWholeExpiredBacklogIsRemovedInBoundedRuns() async throws {
        let (backend, client, prefix) = try isolatedBackend()
        defer { client.close() }
        let queue = uniqueQueue()
        var settings = QueueSettings()
        settings.retentionMilliseconds = 60_000
        try await backend.updateSettings(settings, of: queue)
        _ = try await backend.send((0..<2_500).map { ByteBuffer(string: "\($0)") }, to: queue, options: SendOptions())
        // Every message enqueued two minutes ago.
        let age = """
            local k, enq = KEYS[1], ARGV[1]
            for i = 0, redis.call('LLEN', k) - 1 do
              local envelope = redis.call('LINDEX', k, i)
              local head, rest = string.match(envelope, '^(%d|%d+|[^|]+|)%d+(|.*)$')
              redis.call('LSET', k, i, head .. enq .. rest)
            end
            """
        _ = try await client.send(
            RedisCommand(
                "EVAL",
                [.string(age), .integer(1), .string("\(prefix):{\(queue.rawValue)}:ready"), .integer(MessageID.currentMilliseconds() - 120_000)]
            )
        )
        let once = try await client.send(
            RedisCommand(
                "EVAL",
                [
                    .string(RedisQueueScripts.expire.source), .integer(0), .string(prefix), .string(queue.rawValue),
                    .integer(Int64(RedisQueueBackend.expiriesPerRun)),
                ]
            )
        )
        let values = try #require(once.array)
        #expect(values[0].integer == Int64(RedisQueueBackend.expiriesPerRun))
        #expect(values[1].integer == 1)
        // The sweep finishes the job in one round.
        #expect(await backend.removeExpiredMessages() == 1_500)
        let stats = try await backend.stats(of: queue)
        #expect(stats.ready == 0)
        #expect(stats.totals.expired == 2_500)
    }

    /// Due delayed messages are made ready in runs bounded by count (1000) and by bytes (4 MiB,
    /// read 16 at a time), each saying whether more is due; the sweep repeats until none is.
    @Test(arguments: [(count: 2_500, bytes: 8, firstRun: 1_000), (count: 20, bytes: 512 << 10, firstRun: 16)])
    func dueDelayedMessagesAreMadeReadyInBoundedRuns(count: Int, bytes: Int, firstRun: Int) async throws {
        let (backend, client, prefix) = try isolatedBackend()
        defer { client.close() }
        let queue = uniqueQueue()
        let body = ByteBuffer(repeating: UInt8(ascii: "7"), count: bytes)
        _ = try await backend.send(Array(repeating: body, count: count), to: queue, options: SendOptions(delay: .seconds(60)))
        // Every message due a minute ago.
        let due = """
            for _, m in ipairs(redis.call('ZRANGE', KEYS[1], 0, -1)) do redis.call('ZADD', KEYS[1], 1, m) end
            redis.call('ZADD', KEYS[2], 1, ARGV[1])
            """
        _ = try await client.send(
            RedisCommand(
                "EVAL",
                [.string(due), .integer(2), .string("\(prefix):{\(queue.rawValue)}:delayed"), .string("\(prefix):delay-index"), .string(queue.rawValue)])
        )
        let once = try await client.send(
            RedisCommand("EVAL", [.string(RedisQueueScripts.promoteDue.source), .integer(0), .string(prefix), .string(queue.rawValue)])
        )
        let values = try #require(once.array)
        #expect(values[0].integer == Int64(firstRun))
        #expect(values[1].integer == 1)
        #expect(await backend.promoteDueMessages() == count - firstRun)
        let stats = try await backend.stats(of: queue)
        #expect(stats.ready == count)
        #expect(stats.delayed == 0)
    }
}
