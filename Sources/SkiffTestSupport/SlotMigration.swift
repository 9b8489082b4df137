import Logging
import NIOPosix
public import SkiffRedis

/// One hash slot moved from one primary of a Redis Cluster to another in the steps
/// `redis-cli --cluster reshard` takes (importing and migrating marks, `MIGRATE` of its keys,
/// `SETSLOT NODE` on every primary), so that a test can stop between them and look.
public final class SlotMigration: Sendable {
    public let slot: Int
    public let source: ClusterNodeAddress
    public let target: ClusterNodeAddress
    private let from: RedisClient
    private let to: RedisClient
    private let targetID: String

    private init(slot: Int, source: ClusterNodeAddress, target: ClusterNodeAddress, from: RedisClient, to: RedisClient, targetID: String) {
        self.slot = slot
        self.source = source
        self.target = target
        self.from = from
        self.to = to
        self.targetID = targetID
    }

    /// A client of one node only (no cluster routing), for commands a test aims at that node.
    public static func node(_ address: ClusterNodeAddress) throws -> RedisClient {
        var configuration = try RedisConfiguration(url: "redis://\(address)")
        configuration.commandTimeout = .seconds(5)
        configuration.connectTimeout = .seconds(5)
        return RedisClient(configuration: configuration, eventLoopGroup: MultiThreadedEventLoopGroup.singleton, logger: Logger(label: "test"))
    }

    /// Marks `slot` importing on `target` and migrating on `source`: from now on the source
    /// answers `ASK` for the slot's keys it no longer holds.
    public static func begin(slot: Int, from source: ClusterNodeAddress, to target: ClusterNodeAddress) async throws -> SlotMigration {
        let (from, to) = (try node(source), try node(target))
        do {
            guard let sourceID = try await from.send(RedisCommand("CLUSTER", "MYID")).string,
                let targetID = try await to.send(RedisCommand("CLUSTER", "MYID")).string
            else { throw RedisClientError.unexpectedReply("CLUSTER MYID gave no id") }
            _ = try await to.send(RedisCommand("CLUSTER", "SETSLOT", .integer(Int64(slot)), "IMPORTING", .string(sourceID)))
            _ = try await from.send(RedisCommand("CLUSTER", "SETSLOT", .integer(Int64(slot)), "MIGRATING", .string(targetID)))
            return SlotMigration(slot: slot, source: source, target: target, from: from, to: to, targetID: targetID)
        } catch {
            from.close()
            to.close()
            throw error
        }
    }

    /// Moves these keys of the slot to the target.
    public func move(_ keys: [String]) async throws {
        guard !keys.isEmpty else { return }
        _ = try await from.send(
            RedisCommand("MIGRATE", [.string(target.host), .integer(Int64(target.port)), "", 0, 5000, "KEYS"] + keys.map { .string($0) }))
    }

    /// Moves every key of the slot still on the source (up to 1000).
    public func moveRemainingKeys() async throws {
        let reply = try await from.send(RedisCommand("CLUSTER", "GETKEYSINSLOT", .integer(Int64(slot)), 1000))
        try await move((reply.array ?? []).compactMap(\.string))
    }

    /// Gives the slot to the target on every primary, which ends the migration, and closes the
    /// migration's connections.
    public func finish(primaries: [ClusterNodeAddress]) async throws {
        defer { close() }
        for primary in primaries {
            let node = try Self.node(primary)
            defer { node.close() }
            _ = try await node.send(RedisCommand("CLUSTER", "SETSLOT", .integer(Int64(slot)), "NODE", .string(targetID)))
        }
    }

    /// Moves the whole slot at once.
    public static func move(slot: Int, from source: ClusterNodeAddress, to target: ClusterNodeAddress, primaries: [ClusterNodeAddress]) async throws {
        let migration = try await begin(slot: slot, from: source, to: target)
        try await migration.moveRemainingKeys()
        try await migration.finish(primaries: primaries)
    }

    public func close() {
        from.close()
        to.close()
    }
}
