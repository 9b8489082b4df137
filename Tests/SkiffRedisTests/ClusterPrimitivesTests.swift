import NIOCore
import Testing

@testable import SkiffRedis

/// Slots, redirections, slot maps and cluster URLs, without a cluster.
@Suite("Redis Cluster primitives")
struct ClusterPrimitivesTests {
    /// Values from Redis's own `CLUSTER KEYSLOT` (and the CRC16 check value of "123456789").
    @Test(arguments: [
        ("foo", 12182), ("bar", 5061), ("hello", 866), ("123456789", 12739), ("", 0),
        ("{user1000}.following", 3443), ("{user1000}.followers", 3443), ("user1000", 3443),
        // An empty tag hashes the whole key; only the first `{...}` counts.
        ("{}foo", 9500), ("foo{}{bar}", 8363), ("foo{{bar}}zap", 4015), ("foo{bar}{zap}", 5061),
        ("skiff:{orders}:ready", 105), ("orders", 105),
    ])
    func slotsAreRedisKeySlots(key: String, slot: Int) {
        #expect(ClusterSlot.of(key) == slot, "\(key)")
    }

    @Test func redirectionsAreRead() {
        #expect(ClusterRedirection(RedisServerError(message: "MOVED 3999 127.0.0.1:6381")) == .moved(slot: 3999, to: .init(host: "127.0.0.1", port: 6381)))
        #expect(ClusterRedirection(RedisServerError(message: "ASK 12 [::1]:7000")) == .ask(slot: 12, to: .init(host: "::1", port: 7000)))
        #expect(ClusterRedirection(RedisServerError(message: "TRYAGAIN Multiple keys request during rehashing of slot")) == .tryAgain)
        #expect(ClusterRedirection(RedisServerError(message: "CLUSTERDOWN The cluster is down")) == .tryAgain)
        // Redis 7 names an endpoint it does not know by its port only: the node that answered.
        #expect(
            ClusterRedirection(RedisServerError(message: "MOVED 7 :7001"), answeredBy: "10.0.0.2") == .moved(slot: 7, to: .init(host: "10.0.0.2", port: 7001)))
        for message in ["ERR unknown", "MOVED x 1.2.3.4:5", "MOVED 16384 1.2.3.4:5", "MOVED 1 host", "MOVED 1 :5", "ASK 1"] {
            #expect(ClusterRedirection(RedisServerError(message: message)) == nil, "\(message)")
        }
    }

    static func bulk(_ text: String) -> RedisValue { .bulkString(ByteBuffer(string: text)) }

    static func node(_ ip: String, _ port: Int64, role: String, health: String = "online", tlsPort: Int64? = nil) -> RedisValue {
        var fields: [RedisValue] = [bulk("id"), bulk("abc"), bulk("port"), .integer(port), bulk("ip"), bulk(ip), bulk("endpoint"), bulk(ip)]
        if let tlsPort { fields += [bulk("tls-port"), .integer(tlsPort)] }
        fields += [bulk("role"), bulk(role), bulk("replication-offset"), .integer(1), bulk("health"), bulk(health)]
        return .array(fields)
    }

    @Test func aShardsReplyBecomesAMap() throws {
        let reply = RedisValue.array([
            .array([
                Self.bulk("slots"), .array([.integer(0), .integer(5460)]),
                Self.bulk("nodes"), .array([Self.node("10.0.0.1", 7000, role: "master", tlsPort: 8000), Self.node("10.0.0.4", 7003, role: "replica")]),
            ]),
            .array([
                Self.bulk("slots"), .array([.integer(5461), .integer(10922)]),
                // A failed primary beside its promoted replica.
                Self.bulk("nodes"),
                .array([Self.node("10.0.0.2", 7001, role: "master", health: "fail"), Self.node("10.0.0.5", 7004, role: "master")]),
            ]),
            .array([
                Self.bulk("slots"), .array([.integer(10923), .integer(12000), .integer(12001), .integer(16383)]),
                Self.bulk("nodes"), .array([Self.node("10.0.0.3", 7002, role: "master")]),
            ]),
        ])
        let map = try ClusterSlotMap.fromShards(reply, tls: false)
        #expect(map.unassignedSlots == 0)
        #expect(map.primary(for: 0) == ClusterNodeAddress(host: "10.0.0.1", port: 7000))
        #expect(map.primary(for: 5460) == ClusterNodeAddress(host: "10.0.0.1", port: 7000))
        #expect(map.primary(for: 5461) == ClusterNodeAddress(host: "10.0.0.5", port: 7004))
        #expect(map.primary(for: 16383) == ClusterNodeAddress(host: "10.0.0.3", port: 7002))
        #expect(map.replicas[0] == [ClusterNodeAddress(host: "10.0.0.4", port: 7003)])
        let tls = try ClusterSlotMap.fromShards(reply, tls: true)
        #expect(tls.primary(for: 0) == ClusterNodeAddress(host: "10.0.0.1", port: 8000))
    }

    @Test func aSlotsReplyBecomesTheSameMap() throws {
        func range(_ start: Int64, _ end: Int64, _ nodes: [(String, Int64)]) -> RedisValue {
            .array([.integer(start), .integer(end)] + nodes.map { .array([Self.bulk($0.0), .integer($0.1), Self.bulk("id")]) })
        }
        let map = try ClusterSlotMap.fromSlots(
            .array([range(0, 8191, [("127.0.0.1", 7100), ("127.0.0.1", 7103)]), range(8192, 16383, [("127.0.0.1", 7101)])])
        )
        #expect(map.unassignedSlots == 0)
        #expect(map.primaries == [.init(host: "127.0.0.1", port: 7100), .init(host: "127.0.0.1", port: 7101)])
        #expect(map.primary(for: 8192) == ClusterNodeAddress(host: "127.0.0.1", port: 7101))
        var partial = ClusterSlotMap()
        partial.assign(0...100, to: .init(host: "h", port: 1))
        #expect(partial.unassignedSlots == 16384 - 101)
        #expect(partial.primary(for: 101) == nil)
    }

    @Test func clusterURLsNameTheirSeeds() throws {
        let plain = try RedisConfiguration(url: "redis+cluster://127.0.0.1:7100,127.0.0.1:7101,[::1]:7102,node4")
        #expect(plain.isCluster && !plain.tls)
        #expect(plain.clusterSeeds.map(\.description) == ["127.0.0.1:7100", "127.0.0.1:7101", "[::1]:7102", "node4:6379"])
        #expect(plain.host == "127.0.0.1" && plain.port == 7100)
        let secure = try RedisConfiguration(url: "rediss+cluster://app:s%40cret@10.0.0.1:6379")
        #expect(secure.isCluster && secure.tls && secure.username == "app" && secure.password == "s@cret")
        #expect(secure.node(.init(host: "10.0.0.9", port: 6380)).host == "10.0.0.9")
        #expect(!secure.node(.init(host: "10.0.0.9", port: 6380)).isCluster)
        #expect(try !RedisConfiguration(url: "redis://h:1").isCluster)
        for bad in ["redis+cluster://h:1/2", "redis+cluster://h:1,,h:2", "redis+cluster://h:99999", "redis+sentinel://h:1"] {
            #expect(throws: RedisClientError.self, "\(bad)") { try RedisConfiguration(url: bad) }
        }
    }
}
