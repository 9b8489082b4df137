import Foundation
import Logging
import NIOCore
import NIOPosix
import PropertyBased
import SkiffTestSupport
import Testing

@testable import SkiffQueue
@testable import SkiffRedis
@testable import SkiffRedisQueue

/// The cluster layout of the Redis backend: slot tags, queue families (Swift's and Lua's agree),
/// channels, and the guard that keeps every script in its own slot.
@Suite("Redis Cluster layout")
struct ClusterLayoutTests {
    @Test func everySlotHasATagThatHashesToIt() {
        for slot in 0..<ClusterSlot.count {
            let tag = ClusterSlotTags.tag(for: slot)
            #expect(ClusterSlot.of(tag) == slot, "slot \(slot): \(tag)")
            #expect(!tag.contains("{") && !tag.contains("}") && !tag.isEmpty)
        }
        // Keys in Redis depend on these: they never change.
        #expect(ClusterSlotTags.tag(for: 0) == "1bz")
        #expect(ClusterSlotTags.tag(for: 105) == ClusterSlotTags.tag(for: ClusterSlot.of("orders")))
    }

    @Test func familiesJoinAQueueAndItsDeadLetterQueues() {
        #expect(RedisQueueKeys.family("orders") == "orders")
        #expect(RedisQueueKeys.family("orders-dlq") == "orders")
        #expect(RedisQueueKeys.family("orders-dlq-dlq") == "orders")
        #expect(RedisQueueKeys.family("-dlq") == "_")
        #expect(RedisQueueKeys.family("a-dlqx") == "a-dlqx")
        #expect(RedisQueueKeys.family("a-") == "a")
        // Found by review: a 122-character name's dead-letter queue (126) has its own dead-letter
        // queue cut at 124 characters, "...-d-dlq": the family strips the cut piece too.
        let name = String(repeating: "a", count: 122)
        #expect(RedisQueueKeys.family(Self.deadLetterName(name)) == name)
        #expect(RedisQueueKeys.family(Self.deadLetterName(Self.deadLetterName(name))) == name)
        let keys = RedisQueueKeys(prefix: "skiff", queue: QueueName("orders-dlq")!, clustered: true)
        #expect(keys.base == "skiff:{orders}:orders-dlq:")
        #expect(keys.slot == ClusterSlot.of("orders"))
        #expect(keys.scriptKeys == ["skiff:{orders}", "skiff:{\(ClusterSlotTags.tag(for: ClusterSlot.of("orders")))}"])
        #expect(RedisQueueKeys(prefix: "skiff", queue: QueueName("orders")!, clustered: false).base == "skiff:{orders}:")
    }

    /// Partition p of a queue and of its dead-letter queues share a family of their own, so a
    /// dead letter moves within its slot and partitions spread over slots.
    @Test func partitionsHaveFamiliesOfTheirOwn() {
        let queue = QueueName("orders")!
        for index in 1..<QueueName.maximumPartitions {
            let family = RedisQueueKeys.family(queue.partition(index).rawValue)
            #expect(family == "orders~\(index)")
            let deadLetters = QueueSettings().deadLetterQueue(of: queue.partition(index))
            #expect(RedisQueueKeys.family(deadLetters.rawValue) == family)
            #expect(RedisQueueKeys.family(QueueSettings().deadLetterQueue(of: deadLetters).rawValue) == family)
        }
        let slots = Set((0..<QueueName.maximumPartitions).map { ClusterSlot.of(RedisQueueKeys.family(queue.partition($0).rawValue)) })
        #expect(slots.count == QueueName.maximumPartitions)
        // A channel names the partition back.
        let keys = RedisQueueKeys(prefix: "skiff", queue: queue.partition(5), clustered: true)
        #expect(RedisQueueKeys.queue(fromChannel: keys.channel, prefix: "skiff", clustered: true) == queue.partition(5))
        let single = RedisQueueKeys(prefix: "skiff", queue: queue.partition(5), clustered: false)
        #expect(RedisQueueKeys.queue(fromChannel: single.channel, prefix: "skiff", clustered: false) == queue.partition(5))
    }

    @Test func channelsNameTheirQueueInBothLayouts() {
        for clustered in [false, true] {
            for name in ["q", "orders-dlq", "a_b-c", String(repeating: "z", count: 128)] {
                let queue = QueueName(name)!
                let channel = RedisQueueKeys(prefix: "p", queue: queue, clustered: clustered).channel
                #expect(RedisQueueKeys.queue(fromChannel: channel, prefix: "p", clustered: clustered) == queue, "\(channel)")
            }
            #expect(RedisQueueKeys.queue(fromChannel: "other:{q}:notify", prefix: "p", clustered: clustered) == nil)
        }
    }

    /// The default dead-letter queue's name (QueueSettings): the name cut at 124 characters + `-dlq`.
    static func deadLetterName(_ name: String) -> String { String(name.prefix(QueueName.maximumLength - 4)) + "-dlq" }

    /// A queue, its dead-letter queue, that one's dead-letter queue and so on share a family,
    /// for every length and ending (names built from `a`, `-`, `d`, `l`, `q` and `-dlq` pieces).
    @Test func aDeadLetterChainNeverLeavesItsFamily() async {
        let pieces = Gen.int(in: 0...5).array(of: 1...60)
        await propertyCheck(count: 2000, input: pieces) { pieces in
            let name = String(pieces.map { ["a", "-", "d", "l", "q", "-dlq"][$0] }.joined().prefix(QueueName.maximumLength))
            guard QueueName(name) != nil else { return }
            var queue = name
            for _ in 0..<4 {
                queue = Self.deadLetterName(queue)
                #expect(RedisQueueKeys.family(queue) == RedisQueueKeys.family(name), "\(name) -> \(queue)")
            }
            #expect(!RedisQueueKeys.family(name).isEmpty)
        }
    }

    /// Lua's `family` is Swift's, for names built from `-dlq` pieces and cut anywhere.
    @Test(.enabled(if: TestEnvironment.hasRedis)) func luaAndSwiftAgreeOnFamilies() async throws {
        var configuration = try RedisConfiguration(url: try #require(TestEnvironment.redisURL))
        configuration.commandTimeout = .seconds(5)
        let client = RedisClient(configuration: configuration, eventLoopGroup: MultiThreadedEventLoopGroup.singleton, logger: Logger(label: "test"))
        defer { client.close() }
        // KEYS[2] set: the library runs in its cluster layout.
        let script = RedisQueueScripts.library + "\nreturn family(ARGV[3])"
        let pieces = Gen.int(in: 0...5).array(of: 1...60)
        await propertyCheck(count: 300, input: pieces) { pieces in
            let base = String(pieces.map { ["a", "-dlq", "-", "q", "-d", "-dl"][$0 % 6] }.joined().prefix(QueueName.maximumLength))
            guard let queue = QueueName(base) else { return }
            // A partition's name too, for a quarter of the names each.
            let name = queue.partition([0, 1, 9, 63][pieces.count % 4]).rawValue
            do {
                let reply = try await client.send(RedisCommand("EVAL", [.string(script), 2, "k", "k", "p", "", .string(name)]))
                #expect(reply.string == RedisQueueKeys.family(name), "\(name)")
            } catch {
                Issue.record("\(error)")
            }
        }
    }

    /// A dead-letter queue outside the family cannot be configured on a cluster; one written into
    /// the settings behind the API's back (data from a single Redis) acts as the default, so no
    /// script reaches into another slot and nothing is lost.
    @Test(.enabled(if: TestEnvironment.hasRedisCluster)) func aScriptNeverLeavesItsSlot() async throws {
        let fixture = try await BackendFixture.make(.redisCluster)
        defer { fixture.close() }
        let backend = try #require(fixture.backend as? RedisQueueBackend)
        let queue = QueueName(TestEnvironment.uniqueName("slot"))!
        let error = await #expect(throws: QueueError.self) {
            try await backend.updateSettings(QueueSettings(maxReceiveCount: 1, deadLetterQueue: QueueName("elsewhere")), of: queue)
        }
        #expect(error?.kind == .invalidArgument)
        try await backend.updateSettings(QueueSettings(maxReceiveCount: 1), of: queue)
        let config = backend.keys(queue).config
        _ = try await backend.client.send(RedisCommand("HSET", .string(config), "deadLetterQueue", "elsewhere"), slotKey: config)
        _ = try await backend.send("poison", to: queue)
        let delivery = try #require(try await backend.receiveAcknowledged(from: queue).first)
        #expect(try await backend.reject(delivery.receipt, in: queue, delay: .zero, reason: "no"))
        let deadLetterQueue = QueueName(queue.rawValue + "-dlq")!
        #expect(try await backend.stats(of: queue).deadLetterReady == 1)
        #expect(try await backend.take(from: deadLetterQueue) == "poison")
        #expect(try await backend.stats(of: QueueName("elsewhere")!).ready == 0)
    }

    /// A family's slot half-way through a migration (its in-flight hash already on the target,
    /// its ready list not): a claim run there would pop from the list and then fail on the hash,
    /// and Redis keeps a failed script's writes, so the message would be lost. The scripts'
    /// declared keys never exist, so the source answers ASK before the claim starts, and a script
    /// never follows ASK: the client waits for the migration to finish and the message is
    /// delivered once, on the new owner.
    @Test(.enabled(if: TestEnvironment.hasRedisCluster)) func aHalfMigratedQueueLosesNothing() async throws {
        let fixture = try await BackendFixture.make(.redisCluster)
        defer { fixture.close() }
        let backend = try #require(fixture.backend as? RedisQueueBackend)
        let client = backend.client
        let queue = QueueName(TestEnvironment.uniqueName("migrate"))!
        _ = try await backend.send("held", to: queue)
        _ = try await backend.send("waiting", to: queue)
        let held = try #require(try await backend.receiveAcknowledged(from: queue).first)
        #expect(String(buffer: held.message.body) == "held")

        // Start moving the slot, and move the in-flight hash only.
        let keys = backend.keys(queue)
        let slot = try #require(keys.slot)
        let map = try await client.router!.refresh()
        let (source, target) = (try #require(map.primary(for: slot)), try #require(map.primaries.first { $0 != map.primary(for: slot) }))
        let migration = try await SlotMigration.begin(slot: slot, from: source, to: target)
        try await migration.move([keys.base + "inflight"])

        // A claim now cannot run; it waits (the client retries within its deadline, 5 s here).
        let claim = Task { try await backend.receive(from: queue, timeout: .zero) }
        try await Task.sleep(for: .milliseconds(300))
        // Finish the move: the rest of the slot's keys, then the slot itself on every primary.
        try await migration.moveRemainingKeys()
        try await migration.finish(primaries: map.primaries)
        let delivered = try #require(try await claim.value)
        #expect(String(buffer: delivered.message.body) == "waiting")
        #expect(try await backend.complete(delivered))
        // Nothing was lost or doubled: the held claim is still held and settles once.
        #expect(try await backend.acknowledge([held.receipt], in: queue) == [true])
        let stats = try await backend.stats(of: queue)
        #expect(stats.ready == 0 && stats.inFlight == 0 && stats.delayed == 0)
        #expect(stats.totals.enqueued == 2 && stats.totals.delivered == 2)
    }

    /// Two replicas of a cluster backend whose maintenance never runs within a test (no safety
    /// sweep): a waiter gets a message only through its wake-up or a kick after a resubscribe.
    static func replicas() throws -> (sender: RedisQueueBackend, waiter: RedisQueueBackend, close: @Sendable () -> Void) {
        var configuration = try RedisConfiguration(url: try #require(TestEnvironment.redisClusterURL))
        configuration.commandTimeout = .seconds(5)
        configuration.connectTimeout = .seconds(5)
        let group = MultiThreadedEventLoopGroup.singleton
        let clients = (0..<2).map { _ in RedisClient(configuration: configuration, eventLoopGroup: group, logger: Logger(label: "test")) }
        let backends = clients.map {
            RedisQueueBackend(
                client: $0,
                configuration: RedisQueueConfiguration(claimLease: .seconds(600), sweepInterval: .seconds(60)),
                eventLoop: group.next(),
                logger: Logger(label: "test")
            )
        }
        let tasks = backends.map { backend in Task { _ = try? await backend.run() } }
        let close: @Sendable () -> Void = {
            for task in tasks { task.cancel() }
            for client in clients { client.close() }
        }
        return (backends[0], backends[1], close)
    }

    /// A queue whose slot is served by another primary than the first one of the map.
    static func queueOnAnotherPrimary(_ backend: RedisQueueBackend, _ name: String) async throws -> QueueName {
        let map = try await backend.client.router!.refresh()
        for index in 0..<1_000 {
            let queue = QueueName(TestEnvironment.uniqueName("\(name)-\(index)"))!
            if let slot = backend.keys(queue).slot, map.primary(for: slot) != map.primaries.first { return queue }
        }
        throw QueueError.internalError("no queue name off the first primary")
    }

    /// Starts a 20 s wait on `queue` and returns once its subscription is confirmed.
    static func startWaiting(_ backend: RedisQueueBackend, on queue: QueueName) async throws -> Task<Delivery?, any Error> {
        let waiting = Task { try await backend.receive(from: queue, timeout: .seconds(20)) }
        try await eventually(timeout: .seconds(10)) { backend.wakeToken(for: queue) != nil && backend.waiterCount == 1 }
        return waiting
    }

    /// A send on one replica wakes a waiter on another through the queue's shard: the scripts
    /// `SPUBLISH` on the queue's channel, and the waiter's replica `SSUBSCRIBE`s it at that shard's
    /// primary (not the first primary, where a one-connection subscriber would have listened).
    @Test(.enabled(if: TestEnvironment.hasRedisCluster), .timeLimit(.minutes(1))) func aWakeUpStaysOnItsQueuesShard() async throws {
        let (sender, waiter, close) = try Self.replicas()
        defer { close() }
        let queue = try await Self.queueOnAnotherPrimary(sender, "shard-wake")
        let waiting = try await Self.startWaiting(waiter, on: queue)
        let channel = waiter.keys(queue).channel
        let owner = try await waiter.client.router!.primary(for: try #require(waiter.keys(queue).slot))
        let node = RedisClient(
            configuration: try RedisConfiguration(url: "redis://\(owner)"), eventLoopGroup: MultiThreadedEventLoopGroup.singleton,
            logger: Logger(label: "test"))
        defer { node.close() }
        let subscribers = try #require(try await node.send(RedisCommand("PUBSUB", "SHARDNUMSUB", .string(channel))).array)
        #expect(subscribers.last?.integer == 1)
        let sentAt = ContinuousClock.now
        _ = try await sender.send("woken", to: queue)
        let delivery = try #require(try await waiting.value)
        #expect(String(buffer: delivery.message.body) == "woken")
        // The wake-up, not a sweep (none runs for a minute) and not the end of the 20 s wait (a
        // generous bound: two cores shared by dozens of tests).
        #expect(ContinuousClock.now - sentAt < .seconds(10))
        #expect(try await waiter.complete(delivery))
    }

    /// The queue's slot moves to another primary while a consumer waits: the waiter's replica
    /// loses the channel on the old primary, subscribes at the new one and re-checks the queue, so
    /// a message sent right after the move (possibly before the new subscription) still reaches it
    /// at once, and so does one sent later.
    @Test(.enabled(if: TestEnvironment.hasRedisCluster), .timeLimit(.minutes(1))) func aWaiterIsWokenAfterItsQueuesSlotMoved() async throws {
        let (sender, waiter, close) = try Self.replicas()
        defer { close() }
        let queue = try await Self.queueOnAnotherPrimary(sender, "shard-move")
        let slot = try #require(waiter.keys(queue).slot)
        _ = try await sender.send("before", to: queue)
        #expect(try await waiter.take(from: queue) == "before")
        let waiting = try await Self.startWaiting(waiter, on: queue)
        let token = try #require(waiter.wakeToken(for: queue))

        try await Self.moveSlot(slot, sender.client)
        let sentAt = ContinuousClock.now
        _ = try await sender.send("right after", to: queue)
        let first = try #require(try await waiting.value)
        #expect(String(buffer: first.message.body) == "right after")
        #expect(ContinuousClock.now - sentAt < .seconds(10))
        #expect(try await waiter.complete(first))
        // Subscribed at the new owner, with a token that no longer matches the old one.
        try await eventually(timeout: .seconds(10)) { waiter.wakeToken(for: queue).map { $0 != token } ?? false }
        let again = try await Self.startWaiting(waiter, on: queue)
        let laterAt = ContinuousClock.now
        _ = try await sender.send("later", to: queue)
        let second = try #require(try await again.value)
        #expect(String(buffer: second.message.body) == "later")
        #expect(ContinuousClock.now - laterAt < .seconds(10))
        #expect(try await waiter.complete(second))
    }

    /// The primary of a waiting consumer's queue is killed (SIGKILL): its replica is promoted,
    /// the waiter's replica subscribes there and re-checks, and a message sent after the failover
    /// wakes the waiter without a sweep. Run with the faults, alone (`make test` does).
    @Test(
        .enabled(if: TestEnvironment.hasRedisCluster && ProcessInfo.processInfo.environment["SKIFF_TEST_REDIS_CLUSTER_FAULTS"] == "1"),
        .timeLimit(.minutes(1))
    )
    func aWaiterIsWokenAfterItsQueuesPrimaryFailedOver() async throws {
        let (sender, waiter, close) = try Self.replicas()
        defer { close() }
        let queue = try await Self.queueOnAnotherPrimary(sender, "shard-failover")
        let slot = try #require(waiter.keys(queue).slot)
        let waiting = try await Self.startWaiting(waiter, on: queue)
        let token = try #require(waiter.wakeToken(for: queue))

        let base = try RedisConfiguration(url: try #require(TestEnvironment.redisClusterURL)).clusterSeeds[0].port
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/bin/bash")
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        let directory = TestEnvironment.redisClusterDirectory.map { ["--dir", $0] } ?? []
        let script = root.appendingPathComponent("scripts/redis-cluster.sh").path
        process.arguments = [script, "kill-primary", "--slot", String(slot), "--base-port", String(base)] + directory
        let output = Pipe()
        process.standardOutput = output
        try process.run()
        let text = String(decoding: output.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        #expect(process.terminationStatus == 0)
        let port = try #require(text.split(whereSeparator: \.isNewline).first { $0.hasPrefix("killed-port=") }.flatMap { Int($0.dropFirst(12)) })
        defer {
            let restart = Process()
            restart.executableURL = URL(fileURLWithPath: "/bin/bash")
            restart.arguments = [script, "restart-node", "--port", String(port), "--base-port", String(base)] + directory
            try? restart.run()
            restart.waitUntilExit()
        }
        // Subscribed at the promoted replica: a new token.
        try await eventually(timeout: .seconds(30)) { waiter.wakeToken(for: queue).map { $0 != token } ?? false }
        let sentAt = ContinuousClock.now
        _ = try await sender.send("after the failover", to: queue)
        let delivery = try #require(try await waiting.value)
        #expect(String(buffer: delivery.message.body) == "after the failover")
        #expect(ContinuousClock.now - sentAt < .seconds(10))
        #expect(try await waiter.complete(delivery))
    }

    /// Moves `slot` with its keys to another primary, as `redis-cli --cluster reshard` does.
    static func moveSlot(_ slot: Int, _ client: RedisClient) async throws {
        let map = try await client.router!.refresh()
        let source = try #require(map.primary(for: slot))
        try await SlotMigration.move(slot: slot, from: source, to: try #require(map.primaries.first { $0 != source }), primaries: map.primaries)
    }
}
