/// Where and how to reach Redis, and the deadlines that bound every conversation with it.
public struct RedisConfiguration: Sendable, Equatable {
    public var host: String
    public var port: Int
    /// ACL user name; `nil` authenticates as the default user (`AUTH password`).
    public var username: String?
    public var password: String?
    /// A password that changes over time (an IAM access token), asked for by every new
    /// connection; when set, `password` is not used.
    public var passwordSource: RedisPasswordSource?
    public var database: Int
    /// `rediss://`: TLS, as Memorystore's in-transit encryption requires.
    public var tls: Bool
    /// PEM file with the CA certificates that sign the server's certificate (Memorystore's server CA).
    public var tlsCAFile: String?
    /// Name to verify the server certificate against; defaults to `host`.
    public var tlsServerName: String?
    /// Verify the certificate chain but not the host name (Memorystore certificates name no IP).
    public var tlsSkipHostnameVerification: Bool
    public var connectTimeout: Duration
    /// Deadline for every non-blocking command. Keep it under a second so callers can answer 503
    /// within a second when Redis hangs.
    public var commandTimeout: Duration
    /// Added to a blocking command's server-side timeout to make its client-side deadline.
    public var blockingMargin: Duration
    /// Connections shared by pipelined commands.
    public var multiplexedConnections: Int
    /// At most this many dedicated connections for blocking commands.
    public var maxBlockingConnections: Int
    /// Seed nodes of a Redis Cluster (`redis+cluster://`); empty for a single Redis. The client
    /// reads the slot map from them and routes every command by its key's slot.
    public var clusterSeeds: [ClusterNodeAddress] = []

    public var isCluster: Bool { !clusterSeeds.isEmpty }

    /// This configuration aimed at one node of the cluster (credentials, TLS and deadlines kept).
    public func node(_ address: ClusterNodeAddress) -> RedisConfiguration {
        var node = self
        node.host = address.host
        node.port = address.port
        node.clusterSeeds = []
        return node
    }

    public init(
        host: String = "127.0.0.1",
        port: Int = 6379,
        username: String? = nil,
        password: String? = nil,
        database: Int = 0,
        tls: Bool = false,
        tlsCAFile: String? = nil,
        tlsServerName: String? = nil,
        tlsSkipHostnameVerification: Bool = false,
        connectTimeout: Duration = .milliseconds(500),
        commandTimeout: Duration = .milliseconds(800),
        blockingMargin: Duration = .seconds(1),
        multiplexedConnections: Int = 2,
        maxBlockingConnections: Int = 16
    ) {
        self.host = host
        self.port = port
        self.username = username
        self.password = password
        self.database = database
        self.tls = tls
        self.tlsCAFile = tlsCAFile
        self.tlsServerName = tlsServerName
        self.tlsSkipHostnameVerification = tlsSkipHostnameVerification
        self.connectTimeout = connectTimeout
        self.commandTimeout = commandTimeout
        self.blockingMargin = blockingMargin
        self.multiplexedConnections = multiplexedConnections
        self.maxBlockingConnections = maxBlockingConnections
    }

    /// Parses `redis://[[user]:password@]host[:port][/db]` or `rediss://...` (TLS), and for a
    /// Redis Cluster `redis+cluster://[[user]:password@]host[:port],host[:port]...` (or
    /// `rediss+cluster://`): any reachable nodes, from which the client learns the rest.
    ///
    /// User and password may be percent-encoded. IPv6 hosts go in brackets.
    public init(url: String) throws {
        self.init()
        let scheme: String
        var rest: Substring
        if let range = url.firstRange(of: "://") {
            scheme = url[..<range.lowerBound].lowercased()
            rest = url[range.upperBound...]
        } else {
            throw RedisClientError.invalidConfiguration("REDIS_URL must start with redis://, rediss://, redis+cluster:// or rediss+cluster://")
        }
        let isCluster: Bool
        switch scheme {
        case "redis": (tls, isCluster) = (false, false)
        case "rediss": (tls, isCluster) = (true, false)
        case "redis+cluster": (tls, isCluster) = (false, true)
        case "rediss+cluster": (tls, isCluster) = (true, true)
        default:
            throw RedisClientError.invalidConfiguration(
                "unsupported scheme '\(scheme)' (use redis://, rediss://, redis+cluster:// or rediss+cluster://)"
            )
        }
        if let query = rest.firstIndex(of: "?") { rest = rest[..<query] }
        if let at = rest.lastIndex(of: "@") {
            let credentials = rest[..<at]
            rest = rest[rest.index(after: at)...]
            if let colon = credentials.firstIndex(of: ":") {
                let user = Self.percentDecode(credentials[..<colon])
                username = user.isEmpty ? nil : user
                password = Self.percentDecode(credentials[credentials.index(after: colon)...])
            } else if !credentials.isEmpty {
                password = Self.percentDecode(credentials)
            }
        }
        var hostPort = rest
        if let slash = rest.firstIndex(of: "/") {
            hostPort = rest[..<slash]
            let db = rest[rest.index(after: slash)...]
            if !db.isEmpty {
                guard let number = Int(db), number >= 0 else {
                    throw RedisClientError.invalidConfiguration("database '\(db)' is not a number")
                }
                database = number
            }
        }
        if isCluster {
            guard database == 0 else { throw RedisClientError.invalidConfiguration("a Redis Cluster has only database 0") }
            clusterSeeds = try hostPort.split(separator: ",", omittingEmptySubsequences: false).map { seed in
                let (host, port) = try Self.parseHostPort(seed)
                return ClusterNodeAddress(host: host, port: port ?? 6379)
            }
            host = clusterSeeds[0].host
            port = clusterSeeds[0].port
        } else {
            let (host, port) = try Self.parseHostPort(hostPort)
            self.host = host
            if let port { self.port = port }
        }
    }

    /// `host`, `host:port`, `[v6]` or `[v6]:port`.
    private static func parseHostPort(_ hostPort: Substring) throws -> (String, Int?) {
        var host: String
        var port: Int?
        if hostPort.hasPrefix("["), let close = hostPort.firstIndex(of: "]") {
            host = String(hostPort[hostPort.index(after: hostPort.startIndex)..<close])
            let after = hostPort[hostPort.index(after: close)...]
            if after.hasPrefix(":") { port = try Self.parsePort(after.dropFirst()) }
        } else if let colon = hostPort.lastIndex(of: ":") {
            host = String(hostPort[..<colon])
            port = try Self.parsePort(hostPort[hostPort.index(after: colon)...])
        } else {
            host = String(hostPort)
        }
        if host.isEmpty { throw RedisClientError.invalidConfiguration("REDIS_URL has no host") }
        return (host, port)
    }

    private static func parsePort(_ text: Substring) throws -> Int {
        guard let port = Int(text), (1...65535).contains(port) else {
            throw RedisClientError.invalidConfiguration("port '\(text)' is not a number from 1 to 65535")
        }
        return port
    }

    private static func percentDecode(_ text: Substring) -> String {
        var bytes: [UInt8] = []
        var iterator = Array(text.utf8).makeIterator()
        while let byte = iterator.next() {
            if byte == UInt8(ascii: "%"), let high = iterator.next(), let low = iterator.next(),
                let value = UInt8(String(decoding: [high, low], as: UTF8.self), radix: 16)
            {
                bytes.append(value)
            } else {
                bytes.append(byte)
            }
        }
        return String(decoding: bytes, as: UTF8.self)
    }
}
