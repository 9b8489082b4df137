/// Which primary serves each of the 16384 hash slots, read from `CLUSTER SHARDS` (Redis 7) or,
/// from older servers, `CLUSTER SLOTS`.
public struct ClusterSlotMap: Equatable, Sendable {
    /// The primaries that serve at least one slot, in the order first seen.
    public private(set) var primaries: [ClusterNodeAddress]
    /// The replicas of each primary (same index), healthy or not.
    public private(set) var replicas: [[ClusterNodeAddress]]
    /// Slot → index in `primaries`, or `unassigned`.
    private var owners: [UInt16]
    private static let unassigned = UInt16.max

    public init() {
        primaries = []
        replicas = []
        owners = Array(repeating: Self.unassigned, count: ClusterSlot.count)
    }

    /// The primary serving `slot`, `nil` when no node serves it (the cluster is down for it).
    public func primary(for slot: Int) -> ClusterNodeAddress? {
        let owner = owners[slot]
        return owner == Self.unassigned ? nil : primaries[Int(owner)]
    }

    /// Slots with no primary.
    public var unassignedSlots: Int { owners.count { $0 == Self.unassigned } }

    /// Assigns `slots` to `primary` (with its replicas).
    public mutating func assign(_ slots: ClosedRange<Int>, to primary: ClusterNodeAddress, replicas nodeReplicas: [ClusterNodeAddress] = []) {
        let index: Int
        if let known = primaries.firstIndex(of: primary) {
            index = known
            for replica in nodeReplicas where !replicas[index].contains(replica) { replicas[index].append(replica) }
        } else {
            index = primaries.count
            primaries.append(primary)
            replicas.append(nodeReplicas)
        }
        for slot in slots.clamped(to: 0...(ClusterSlot.count - 1)) { owners[slot] = UInt16(index) }
    }

    /// Reads a `CLUSTER SHARDS` reply. `tls`: address nodes by their `tls-port`.
    public static func fromShards(_ reply: RedisValue, tls: Bool) throws -> ClusterSlotMap {
        guard let shards = reply.array else { throw RedisClientError.unexpectedReply("CLUSTER SHARDS returned \(reply)") }
        var map = ClusterSlotMap()
        for shard in shards {
            let fields = try Self.fields(of: shard, "CLUSTER SHARDS shard")
            let bounds = (fields["slots"]?.array ?? []).compactMap { $0.integer.map(Int.init) }
            guard bounds.count % 2 == 0 else { throw RedisClientError.unexpectedReply("CLUSTER SHARDS slots \(bounds)") }
            var primary: ClusterNodeAddress?
            var shardReplicas: [ClusterNodeAddress] = []
            for node in fields["nodes"]?.array ?? [] {
                let node = try Self.fields(of: node, "CLUSTER SHARDS node")
                guard let address = Self.address(of: node, tls: tls) else { continue }
                if node["role"]?.string == "master" {
                    // A failed primary still listed beside its promoted replica is not a primary.
                    if node["health"]?.string != "fail" { primary = address }
                } else {
                    shardReplicas.append(address)
                }
            }
            guard let primary, !bounds.isEmpty else { continue }
            for pair in stride(from: 0, to: bounds.count, by: 2) where bounds[pair] <= bounds[pair + 1] {
                map.assign(bounds[pair]...bounds[pair + 1], to: primary, replicas: shardReplicas)
            }
        }
        return map
    }

    /// Reads a `CLUSTER SLOTS` reply: `[start, end, [host, port, id...], [replica...]...]` per range.
    public static func fromSlots(_ reply: RedisValue) throws -> ClusterSlotMap {
        guard let ranges = reply.array else { throw RedisClientError.unexpectedReply("CLUSTER SLOTS returned \(reply)") }
        var map = ClusterSlotMap()
        for range in ranges {
            guard let parts = range.array, parts.count >= 3, let start = parts[0].integer, let end = parts[1].integer, start <= end else {
                throw RedisClientError.unexpectedReply("CLUSTER SLOTS range \(range)")
            }
            let nodes = parts[2...].compactMap { node -> ClusterNodeAddress? in
                guard let fields = node.array, fields.count >= 2, let host = fields[0].string, let port = fields[1].integer, !host.isEmpty else {
                    return nil
                }
                return ClusterNodeAddress(host: host, port: Int(port))
            }
            guard let primary = nodes.first else { continue }
            map.assign(Int(start)...Int(end), to: primary, replicas: Array(nodes.dropFirst()))
        }
        return map
    }

    /// A RESP2 map: alternating field names and values.
    private static func fields(of value: RedisValue, _ what: String) throws -> [String: RedisValue] {
        guard let items = value.array, items.count % 2 == 0 else { throw RedisClientError.unexpectedReply("\(what): \(value)") }
        var fields: [String: RedisValue] = [:]
        for index in stride(from: 0, to: items.count, by: 2) {
            if let name = items[index].string { fields[name] = items[index + 1] }
        }
        return fields
    }

    /// The node's preferred endpoint (its `endpoint`, else its `ip`) and port.
    private static func address(of node: [String: RedisValue], tls: Bool) -> ClusterNodeAddress? {
        let port = (tls ? node["tls-port"] : node["port"])?.integer ?? node["port"]?.integer
        var host = node["endpoint"]?.string
        if host == nil || host == "?" || host == "" { host = node["ip"]?.string }
        guard let host, !host.isEmpty, host != "?", let port, port > 0 else { return nil }
        return ClusterNodeAddress(host: host, port: Int(port))
    }
}
