import Foundation
import Logging
import NIOCore
import NIOPosix
import SkiffTestSupport
import Synchronization
import Testing

@testable import SkiffRedis

/// The client against a real Redis Cluster (`scripts/redis-cluster.sh`, three primaries with a
/// replica each): routing by slot, a slot moved under it (`MOVED`), a slot half-way through a
/// migration (`ASK`), and a primary killed under it (failover). Serialized: the tests move slots
/// and kill nodes.
@Suite("Redis Cluster client", .serialized, .enabled(if: TestEnvironment.hasRedisCluster), .timeLimit(.minutes(3)))
struct RedisClusterClientTests {
    static func client(_ url: String, timeout: Duration = .seconds(2)) throws -> RedisClient {
        var configuration = try RedisConfiguration(url: url)
        configuration.commandTimeout = timeout
        configuration.connectTimeout = .milliseconds(500)
        return RedisClient(configuration: configuration, eventLoopGroup: MultiThreadedEventLoopGroup.singleton, logger: Logger(label: "test"))
    }

    /// A plain client to one node (no routing), for setting the cluster up.
    static func node(_ address: ClusterNodeAddress) throws -> RedisClient {
        try client("redis://\(address)")
    }

    static func map(_ seed: RedisClient) async throws -> ClusterSlotMap {
        try ClusterSlotMap.fromShards(try await seed.send(RedisCommand("CLUSTER", "SHARDS")), tls: false)
    }

    @Test func everyKeyReachesItsSlotsPrimary() async throws {
        let client = try Self.client(try #require(TestEnvironment.redisClusterURL), timeout: .seconds(5))
        defer { client.close() }
        let prefix = TestEnvironment.uniqueName("route")
        let keys = (0..<300).map { "\(prefix):\($0)" }
        try await withThrowingTaskGroup(of: Void.self) { group in
            for key in keys {
                group.addTask { _ = try await client.send(RedisCommand("SET", .string(key), .string("v-" + key)), slotKey: key) }
            }
            try await group.waitForAll()
        }
        // Each key is on the primary the map names, and only there.
        let seed = try Self.node(client.configuration.clusterSeeds[0])
        defer { seed.close() }
        let map = try await Self.map(seed)
        #expect(map.primaries.count >= 3)
        var nodes: [ClusterNodeAddress: RedisClient] = [:]
        defer { for node in nodes.values { node.close() } }
        for key in keys.prefix(60) {
            let owner = try #require(map.primary(for: ClusterSlot.of(key)))
            if nodes[owner] == nil { nodes[owner] = try Self.node(owner) }
            #expect(try await nodes[owner]!.send(RedisCommand("GET", .string(key))).string == "v-" + key)
        }
        // Scripts run on their first key's node; reading back through the client finds every key.
        let script = RedisScript(name: "cluster-get", source: "return redis.call('GET', KEYS[1])")
        for key in keys.suffix(60) {
            #expect(try await client.evaluate(script, keys: [key], arguments: []).string == "v-" + key)
        }
        #expect(client.health.openConnections >= 3)
    }

    /// Moves `slot` from its owner to another primary the way `redis-cli --cluster reshard` does,
    /// `stopAfterKey`: leaves the slot migrating with only that key moved.
    static func migrate(slot: Int, seed: RedisClient, stopAfterKey: String? = nil) async throws -> (from: ClusterNodeAddress, to: ClusterNodeAddress) {
        let map = try await map(seed)
        let source = try #require(map.primary(for: slot))
        let target = try #require(map.primaries.first { $0 != source })
        let migration = try await SlotMigration.begin(slot: slot, from: source, to: target)
        if let stopAfterKey {
            defer { migration.close() }
            try await migration.move([stopAfterKey])
            return (source, target)
        }
        try await migration.moveRemainingKeys()
        try await migration.finish(primaries: map.primaries)
        return (source, target)
    }

    @Test func aMovedSlotIsFollowedAndAHalfMigratedOneAsked() async throws {
        let url = try #require(TestEnvironment.redisClusterURL)
        let client = try Self.client(url)
        defer { client.close() }
        let seed = try Self.node(client.configuration.clusterSeeds[0])
        defer { seed.close() }
        let tag = TestEnvironment.uniqueName("slot")
        let (moved, stays) = ("{\(tag)}moved", "{\(tag)}stays")
        let slot = ClusterSlot.of(moved)
        for key in [moved, stays] { _ = try await client.send(RedisCommand("SET", .string(key), .string(key)), slotKey: key) }

        // Half-way: `moved` is on the target, `stays` still on the source. The client's map says
        // source; the source answers ASK for the key it no longer has.
        let (_, target) = try await Self.migrate(slot: slot, seed: seed, stopAfterKey: moved)
        #expect(try await client.send(RedisCommand("GET", .string(moved)), slotKey: moved).string == moved)
        #expect(try await client.send(RedisCommand("GET", .string(stays)), slotKey: stays).string == stays)
        // A script is never sent to the target half-way (it would see only the keys moved so
        // far): it waits for the end of the migration, here past its deadline, and did not run.
        let script = RedisScript(name: "cluster-get", source: "return redis.call('GET', KEYS[1])")
        let error = await #expect(throws: RedisClientError.self) { try await client.evaluate(script, keys: [moved], arguments: []) }
        // Given up between attempts (unavailable) or, on a slow machine, while the last ASK was
        // on its way (timeout): never run on the target.
        #expect(error == .unavailable("") || error == .timeout)

        // Finished: the source answers MOVED, the client updates its map and goes on.
        _ = try await Self.migrate(slot: slot, seed: seed)
        #expect(try await client.send(RedisCommand("GET", .string(stays)), slotKey: stays).string == stays)
        #expect(try await client.router!.primary(for: slot) == target)
        #expect(try await client.send(RedisCommand("SET", .string(moved), "again"), slotKey: moved).string == "OK")
        #expect(try await client.evaluate(script, keys: [moved], arguments: []).string == "again")
        // And on again, through the same moves: the client keeps up.
        let again = try await Self.migrate(slot: slot, seed: seed)
        #expect(again.from == target)
        #expect(try await client.send(RedisCommand("GET", .string(moved)), slotKey: moved).string == "again")
    }

    /// Kills the primary of a slot (SIGKILL); its replica takes over and the client follows
    /// within a few command deadlines. The killed node comes back as a replica. It would disturb
    /// every other suite on the cluster, so `make test` runs it on its own afterwards
    /// (`SKIFF_TEST_REDIS_CLUSTER_FAULTS=1`).
    @Test(.enabled(if: ProcessInfo.processInfo.environment["SKIFF_TEST_REDIS_CLUSTER_FAULTS"] == "1"))
    func aKilledPrimaryIsReplacedByItsReplicaAndTheClientFollows() async throws {
        let url = try #require(TestEnvironment.redisClusterURL)
        let client = try Self.client(url, timeout: .seconds(1))
        defer { client.close() }
        let key = TestEnvironment.uniqueName("failover")
        _ = try await client.send(RedisCommand("SET", .string(key), "before"), slotKey: key)
        // Make sure the write reached the replica before the crash.
        _ = try await client.send(RedisCommand("WAIT", 1, 2000), slotKey: key)
        let slot = ClusterSlot.of(key)
        let killed = try Self.script(["kill-primary", "--slot", String(slot)] + Self.portArguments(url))
        let port = try #require(killed.split(whereSeparator: \.isNewline).first { $0.hasPrefix("killed-port=") }.flatMap { Int($0.dropFirst(12)) })
        defer { _ = try? Self.script(["restart-node", "--port", String(port)] + Self.portArguments(url)) }
        let start = ContinuousClock.now
        var value: String?
        while value == nil, ContinuousClock.now - start < .seconds(30) {
            value = try? await client.send(RedisCommand("GET", .string(key)), slotKey: key).string
            if value == nil { try await Task.sleep(for: .milliseconds(100)) }
        }
        #expect(value == "before")
        #expect(try await client.router!.primary(for: slot).port != port)
    }

    static func portArguments(_ url: String) throws -> [String] {
        let configuration = try RedisConfiguration(url: url)
        return ["--base-port", String(configuration.clusterSeeds[0].port)] + (TestEnvironment.redisClusterDirectory.map { ["--dir", $0] } ?? [])
    }

    /// Runs `scripts/redis-cluster.sh` and returns what it printed.
    static func script(_ arguments: [String]) throws -> String {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/bin/bash")
        process.arguments = [root.appendingPathComponent("scripts/redis-cluster.sh").path] + arguments
        let output = Pipe()
        process.standardOutput = output
        try process.run()
        let data = output.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        let text = String(decoding: data, as: UTF8.self)
        guard process.terminationStatus == 0 else { throw RedisClientError.unexpectedReply("redis-cluster.sh \(arguments): \(text)") }
        return text
    }

    /// A subscriber of the cluster, run until the returned task is cancelled, with what it heard
    /// and the connection changes it reported.
    final class Listening: Sendable {
        let heard = Mutex<[String]>([])
        let changes = Mutex<[Bool]>([])
        private let box = Mutex<(subscriber: RedisSubscriber, running: Task<Void, any Error>)?>(nil)

        init(_ client: RedisClient) {
            let subscriber = client.makeSubscriber(
                onMessage: { [weak self] _, payload in self?.heard.withLock { $0.append(String(buffer: payload)) } },
                onConnectionChange: { [weak self] connected in self?.changes.withLock { $0.append(connected) } }
            )
            box.withLock { $0 = (subscriber, Task { try await subscriber.run() }) }
        }

        var subscriber: RedisSubscriber { box.withLock { $0!.subscriber } }

        func stop() { box.withLock { $0?.running.cancel() } }
    }

    /// One channel per primary (hash-tagged so each lands on a different one), as the map has it.
    static func channelPerPrimary(_ client: RedisClient) async throws -> [ClusterNodeAddress: String] {
        let map = try await client.router!.refresh()
        var channels: [ClusterNodeAddress: String] = [:]
        let prefix = TestEnvironment.uniqueName("wake")
        for index in 0..<1_000 where channels.count < map.primaries.count {
            let channel = "{\(prefix)-\(index)}:notify"
            let owner = try #require(map.primary(for: ClusterSlot.of(channel)))
            if channels[owner] == nil { channels[owner] = channel }
        }
        return channels
    }

    /// Sharded pub/sub: every channel is subscribed (`SSUBSCRIBE`) at the primary of its slot,
    /// one connection per primary, and hears what is published there with `SPUBLISH`, which
    /// stays on that shard.
    @Test func theSubscriberListensOnEachChannelsShard() async throws {
        let client = try Self.client(try #require(TestEnvironment.redisClusterURL))
        defer { client.close() }
        let channels = try await Self.channelPerPrimary(client)
        #expect(channels.count >= 3)
        let listening = Listening(client)
        defer { listening.stop() }
        for channel in channels.values { try await listening.subscriber.subscribe(channel) }
        #expect(listening.subscriber.isConnected)
        let nodes = Set((listening.subscriber.connectedNode ?? "").split(separator: ",").map(String.init))
        #expect(nodes == Set(channels.keys.map(\.description)))
        for (owner, channel) in channels {
            let node = try Self.node(owner)
            defer { node.close() }
            // Subscribed on its owner (a replica of the shard would answer MOVED without READONLY).
            let count = try #require(try await node.send(RedisCommand("PUBSUB", "SHARDNUMSUB", .string(channel))).array)
            #expect(count.last?.integer == 1, "\(channel) on \(owner)")
            _ = try await client.send(RedisCommand("SPUBLISH", .string(channel), .string("to-\(channel)")), slotKey: channel)
        }
        try await eventually { listening.heard.withLock { Set($0) } == Set(channels.values.map { "to-\($0)" }) }
        // Subscribing again costs nothing and keeps the generation.
        let channel = try #require(channels.values.first)
        let generation = try #require(listening.subscriber.confirmedGeneration(of: channel))
        try await listening.subscriber.subscribe(channel)
        #expect(listening.subscriber.confirmedGeneration(of: channel) == generation)
        // Left: the last channel of its node closes that node's connection.
        await listening.subscriber.unsubscribe(channel)
        #expect(listening.subscriber.confirmedGeneration(of: channel) == nil)
        try await eventually(timeout: .seconds(5)) {
            (listening.subscriber.connectedNode ?? "").split(separator: ",").count == channels.count - 1
        }
    }

    /// A slot moved to another primary: Redis drops the channel on the old owner (`sunsubscribe`),
    /// the channel loses its generation, the owner is told once it is subscribed at the new
    /// primary, and what is published there is heard.
    @Test func aChannelFollowsItsSlotWhenItMoves() async throws {
        let url = try #require(TestEnvironment.redisClusterURL)
        let client = try Self.client(url)
        defer { client.close() }
        let seed = try Self.node(client.configuration.clusterSeeds[0])
        defer { seed.close() }
        let listening = Listening(client)
        defer { listening.stop() }
        let channel = "{\(TestEnvironment.uniqueName("moving"))}:notify"
        try await listening.subscriber.subscribe(channel)
        let before = try #require(listening.subscriber.confirmedGeneration(of: channel))
        _ = try await client.send(RedisCommand("SPUBLISH", .string(channel), "before"), slotKey: channel)
        try await eventually { listening.heard.withLock { $0.contains("before") } }
        listening.changes.withLock { $0.removeAll() }

        let (_, target) = try await Self.migrate(slot: ClusterSlot.of(channel), seed: seed)
        try await eventually(timeout: .seconds(10)) {
            listening.subscriber.confirmedGeneration(of: channel).map { $0 != before } ?? false
        }
        #expect(listening.changes.withLock { $0.contains(true) })
        let owner = try Self.node(target)
        defer { owner.close() }
        let count = try #require(try await owner.send(RedisCommand("PUBSUB", "SHARDNUMSUB", .string(channel))).array)
        #expect(count.last?.integer == 1)
        _ = try await client.send(RedisCommand("SPUBLISH", .string(channel), "after"), slotKey: channel)
        try await eventually { listening.heard.withLock { $0.contains("after") } }
    }

    /// The primary of a channel's slot dies (SIGKILL): its connection is lost, the replica is
    /// promoted, and the channel is subscribed there, with a new generation, and hears on. Run
    /// with the faults, alone.
    @Test(.enabled(if: ProcessInfo.processInfo.environment["SKIFF_TEST_REDIS_CLUSTER_FAULTS"] == "1"))
    func theSubscriberFollowsItsChannelsWhenTheirPrimaryDies() async throws {
        let url = try #require(TestEnvironment.redisClusterURL)
        let client = try Self.client(url, timeout: .seconds(1))
        defer { client.close() }
        let listening = Listening(client)
        defer { listening.stop() }
        let channels = try await Self.channelPerPrimary(client)
        for channel in channels.values { try await listening.subscriber.subscribe(channel) }
        let channel = try #require(channels.values.first)
        let before = try #require(listening.subscriber.confirmedGeneration(of: channel))
        let others = channels.values.filter { $0 != channel }.map { ($0, listening.subscriber.confirmedGeneration(of: $0)) }
        _ = try await client.send(RedisCommand("SPUBLISH", .string(channel), "before"), slotKey: channel)
        try await eventually { listening.heard.withLock { $0.contains("before") } }

        let killed = try Self.script(["kill-primary", "--slot", String(ClusterSlot.of(channel))] + Self.portArguments(url))
        let port = try #require(killed.split(whereSeparator: \.isNewline).first { $0.hasPrefix("killed-port=") }.flatMap { Int($0.dropFirst(12)) })
        defer { _ = try? Self.script(["restart-node", "--port", String(port)] + Self.portArguments(url)) }
        try await eventually(timeout: .seconds(30)) {
            listening.subscriber.confirmedGeneration(of: channel).map { $0 != before } ?? false
        }
        #expect(listening.subscriber.isConnected)
        #expect(!(listening.subscriber.connectedNode ?? "").contains(":\(port)"))
        // The other shards' channels never lost their subscription.
        for (other, generation) in others { #expect(listening.subscriber.confirmedGeneration(of: other) == generation) }
        try await eventually(timeout: .seconds(10)) {
            _ = try? await client.send(RedisCommand("SPUBLISH", .string(channel), "after"), slotKey: channel)
            return listening.heard.withLock { $0.contains("after") }
        }
    }
}
