import SkiffRedis

/// A configuration value that cannot be used.
public struct ConfigurationError: Error, CustomStringConvertible, Sendable {
    public let description: String
    public init(_ description: String) { self.description = description }
}

/// Everything a replica needs to run, read from the environment (flags of `skiff serve` override).
public struct SkiffConfiguration: Sendable {
    public var host: String
    public var port: Int
    public var api: APISettings
    /// `nil` runs the self-contained in-memory backend.
    public var redis: RedisConfiguration?
    public var keyPrefix: String
    /// How long before the claimed messages of a crashed replica return to their queues.
    public var claimLease: Duration
    /// A name for this replica in logs and `/health`.
    public var replicaID: String
    /// Redis replicas that must confirm a message (`WAIT`) before POST answers 201; 0 = none.
    public var redisWaitReplicas: Int
    public var redisWaitTimeout: Duration
    /// API keys; empty runs the service open to anyone who can reach it (the demo mode).
    public var apiKeys: [APIKey]
    /// Whether `GET /metrics` needs a key with the `admin` scope when keys are configured.
    public var metricsRequireAuth: Bool
    /// `nil`: no rate limiting (the default).
    public var rateLimit: RateLimitSettings?
    /// One JSON line per request at `info`.
    public var accessLog: Bool
    /// Whether a plain single-message POST may skip the router (``FastPathHandler``); the answer
    /// is the same either way, only its cost differs.
    public var fastPath: Bool
    /// Queues the service may hold (`MAX_QUEUES`); creating one more answers 409.
    public var maximumQueues: Int = 10_000
    /// Open client connections per replica (`MAX_CONNECTIONS`); past it a new connection is
    /// answered 503 with `Retry-After` and closed. Room for 10 000 idle long-polls and more.
    public var maximumConnections: Int = 20_000
    /// How long a client may take to send a request's head once its first byte arrived
    /// (`REQUEST_HEAD_TIMEOUT_MS`); past it the connection is answered 408 and closed (slowloris).
    public var requestHeadTimeout: Duration = .seconds(10)
    /// How long a connection may sit idle between requests (`IDLE_TIMEOUT_MS`) before it is closed.
    /// A long-poll in progress is not idle; the default is above the 75 s a proxy keeps one alive.
    public var idleTimeout: Duration = .seconds(90)

    public init(
        host: String = "0.0.0.0",
        port: Int = 8080,
        api: APISettings = APISettings(),
        redis: RedisConfiguration? = nil,
        keyPrefix: String = "skiff",
        claimLease: Duration = .seconds(30),
        replicaID: String = "skiff",
        redisWaitReplicas: Int = 0,
        redisWaitTimeout: Duration = .milliseconds(100),
        apiKeys: [APIKey] = [],
        metricsRequireAuth: Bool = true,
        rateLimit: RateLimitSettings? = nil,
        accessLog: Bool = true,
        fastPath: Bool = true
    ) {
        self.host = host
        self.port = port
        self.api = api
        self.redis = redis
        self.keyPrefix = keyPrefix
        self.claimLease = claimLease
        self.replicaID = replicaID
        self.redisWaitReplicas = redisWaitReplicas
        self.redisWaitTimeout = redisWaitTimeout
        self.apiKeys = apiKeys
        self.metricsRequireAuth = metricsRequireAuth
        self.rateLimit = rateLimit
        self.accessLog = accessLog
        self.fastPath = fastPath
    }

    /// The settings and their environment variables, as documented in the README.
    public static func fromEnvironment(_ environment: [String: String]) throws -> SkiffConfiguration {
        var configuration = SkiffConfiguration()
        func integer(_ name: String, in range: ClosedRange<Int>) throws -> Int? {
            guard let raw = environment[name], !raw.isEmpty else { return nil }
            guard let value = Int(raw), range.contains(value) else {
                throw ConfigurationError("\(name) must be an integer from \(range.lowerBound) to \(range.upperBound), got '\(raw)'")
            }
            return value
        }
        if let host = environment["HOST"], !host.isEmpty { configuration.host = host }
        if let port = try integer("PORT", in: 1...65535) { configuration.port = port }
        if let maximum = try integer("MAX_TIMEOUT", in: 0...3_600_000) { configuration.api.maximumTimeoutMilliseconds = maximum }
        if let timeout = try integer("DEFAULT_TIMEOUT", in: 0...configuration.api.maximumTimeoutMilliseconds) {
            configuration.api.defaultTimeoutMilliseconds = timeout
        }
        if let bytes = try integer("MAX_MESSAGE_BYTES", in: 1...(512 * 1024 * 1024)) { configuration.api.maximumMessageBytes = bytes }
        if let bytes = try integer("MAX_BATCH_BYTES", in: 1024...(512 * 1024 * 1024)) { configuration.api.maximumBatchBytes = bytes }
        if let queues = try integer("MAX_QUEUES", in: 1...10_000_000) { configuration.maximumQueues = queues }
        if let connections = try integer("MAX_CONNECTIONS", in: 1...10_000_000) { configuration.maximumConnections = connections }
        if let timeout = try integer("REQUEST_HEAD_TIMEOUT_MS", in: 100...3_600_000) { configuration.requestHeadTimeout = .milliseconds(timeout) }
        if let timeout = try integer("IDLE_TIMEOUT_MS", in: 1_000...86_400_000) { configuration.idleTimeout = .milliseconds(timeout) }
        if let lease = try integer("CLAIM_LEASE_MS", in: 100...86_400_000) { configuration.claimLease = .milliseconds(lease) }
        if let replicas = try integer("REDIS_WAIT_REPLICAS", in: 0...16) { configuration.redisWaitReplicas = replicas }
        if let wait = try integer("REDIS_WAIT_TIMEOUT_MS", in: 1...60_000) { configuration.redisWaitTimeout = .milliseconds(wait) }
        if let prefix = environment["REDIS_KEY_PREFIX"], !prefix.isEmpty {
            guard prefix.utf8.allSatisfy({ $0 > 0x20 && $0 < 0x7F && $0 != UInt8(ascii: "{") && $0 != UInt8(ascii: "}") }) else {
                throw ConfigurationError("REDIS_KEY_PREFIX must be printable ASCII without spaces or braces")
            }
            configuration.keyPrefix = prefix
        }
        if let replica = environment["REPLICA_ID"], !replica.isEmpty {
            configuration.replicaID = replica
        } else if let hostname = environment["HOSTNAME"], !hostname.isEmpty {
            configuration.replicaID = hostname
        }
        try configuration.readAccessSettings(from: environment)
        do {
            configuration.redis = try RedisConfiguration.fromEnvironment(environment)
        } catch let error as RedisClientError {
            throw ConfigurationError(error.detail)
        }
        return configuration
    }
}
