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
        func node(_ address: ClusterNodeAddress) throws -> RedisClient {
            RedisClient(
                configuration: try RedisConfiguration(url: "redis://\(address)"), eventLoopGroup: MultiThreadedEventLoopGroup.singleton,
                logger: Logger(label: "test"))
        }
        let (from, to) = (try node(source), try node(target))
        defer {
            from.close()
            to.close()
        }
        let sourceID = try #require(try await from.send(RedisCommand("CLUSTER", "MYID")).string)
        let targetID = try #require(try await to.send(RedisCommand("CLUSTER", "MYID")).string)
        _ = try await to.send(RedisCommand("CLUSTER", "SETSLOT", .integer(Int64(slot)), "IMPORTING", .string(sourceID)))
        _ = try await from.send(RedisCommand("CLUSTER", "SETSLOT", .integer(Int64(slot)), "MIGRATING", .string(targetID)))
        let migrate = { (names: [String]) in
            _ = try await from.send(
                RedisCommand("MIGRATE", [.string(target.host), .integer(Int64(target.port)), "", 0, 5000, "KEYS"] + names.map { .string($0) })
            )
        }
        try await migrate([keys.base + "inflight"])

        // A claim now cannot run; it waits (the client retries within its deadline, 5 s here).
        let claim = Task { try await backend.receive(from: queue, timeout: .zero) }
        try await Task.sleep(for: .milliseconds(300))
        // Finish the move: the rest of the slot's keys, then the slot itself on every primary.
        let rest = try #require(try await from.send(RedisCommand("CLUSTER", "GETKEYSINSLOT", .integer(Int64(slot)), 1000)).array).compactMap { $0.string }
        if !rest.isEmpty { try await migrate(rest) }
        for primary in map.primaries {
            let other = try node(primary)
            defer { other.close() }
            _ = try await other.send(RedisCommand("CLUSTER", "SETSLOT", .integer(Int64(slot)), "NODE", .string(targetID)))
        }
        let delivered = try #require(try await claim.value)
        #expect(String(buffer: delivered.message.body) == "waiting")
        #expect(try await backend.complete(delivered))
        // Nothing was lost or doubled: the held claim is still held and settles once.
        #expect(try await backend.acknowledge([held.receipt], in: queue) == [true])
        let stats = try await backend.stats(of: queue)
        #expect(stats.ready == 0 && stats.inFlight == 0 && stats.delayed == 0)
        #expect(stats.totals.enqueued == 2 && stats.totals.delivered == 2)
    }
}
