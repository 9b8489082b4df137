public import Configuration
import SkiffGoogleCloud
public import SkiffPush
public import SkiffRedis

/// A configuration value that cannot be used.
public struct ConfigurationError: Error, CustomStringConvertible, Sendable {
    public let description: String
    public init(_ description: String) { self.description = description }
}

/// Everything a replica needs to run, read through swift-configuration from the settings declared
/// in ``Settings`` (flags of `skiff serve`, then the environment, then a settings file).
public struct SkiffConfiguration: Sendable {
    public var host: String
    public var port: Int
    public var api: APISettings
    /// `nil` runs the self-contained in-memory backend.
    public var redis: RedisConfiguration?
    /// Where a new Redis connection's password comes from (`REDIS_AUTH`).
    public var redisAuthentication: RedisAuthentication = .password
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
    /// A second listener, on 127.0.0.1 only, serving `GET /metrics` and nothing else, with no key
    /// (`METRICS_PORT`): what a collector in the same instance scrapes. `nil`: none.
    public var metricsPort: Int?
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
    /// Open WebSocket streams a replica holds (`MAX_STREAMS`); past it an upgrade answers 503.
    public var maximumStreams: Int = 10_000
    /// How often a stream is pinged; a ping unanswered by the next one closes it (`STREAM_PING_INTERVAL_MS`).
    public var streamPingInterval: Duration = .seconds(15)
    /// The step of each queue's history (`QUEUE_HISTORY_INTERVAL_MS`): every replica samples every
    /// queue this often (the per-queue gauges at least every 15 s), the first sample of an interval
    /// is kept, for an hour (``QueueHistorySample``).
    public var queueHistoryInterval: Duration = .seconds(30)
    /// Push delivery on this replica (`PUSH_ENABLED`, `PUSH_ALLOWED_NETWORKS`).
    public var push = PushConfiguration()
    /// The payload store for large bodies (`PAYLOADS_STORE`); `nil`: none, and a body over
    /// `MAX_MESSAGE_BYTES` is a 413.
    public var payloads: PayloadSettings?
    /// Spans over OTLP (docs/tracing.md); `nil`: tracing off, and the hot paths do no tracing work.
    public var tracing: TracingSettings?

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

    /// Reads every setting in ``Settings`` from `config` (flags, environment, settings file, as
    /// the caller stacked them); what is absent keeps its default.
    public init(reading config: ConfigReader) throws {
        self.init()
        let settings = SettingsReader(config)
        if let host = settings.text(Settings.host) { self.host = host }
        if let port = try settings.integer(Settings.port, in: 1...65535) { self.port = port }
        if let maximum = try settings.integer(Settings.maxTimeout, in: 0...3_600_000) { api.maximumTimeoutMilliseconds = maximum }
        if let timeout = try settings.integer(Settings.defaultTimeout, in: 0...api.maximumTimeoutMilliseconds) {
            api.defaultTimeoutMilliseconds = timeout
        }
        if let bytes = try settings.integer(Settings.maxMessageBytes, in: 1...(512 * 1024 * 1024)) { api.maximumMessageBytes = bytes }
        if let bytes = try settings.integer(Settings.maxBatchBytes, in: 1024...(512 * 1024 * 1024)) { api.maximumBatchBytes = bytes }
        if let queues = try settings.integer(Settings.maxQueues, in: 1...10_000_000) { maximumQueues = queues }
        if let connections = try settings.integer(Settings.maxConnections, in: 1...10_000_000) { maximumConnections = connections }
        if let timeout = try settings.integer(Settings.requestHeadTimeout, in: 100...3_600_000) { requestHeadTimeout = .milliseconds(timeout) }
        if let timeout = try settings.integer(Settings.idleTimeout, in: 1_000...86_400_000) { idleTimeout = .milliseconds(timeout) }
        if let streams = try settings.integer(Settings.maxStreams, in: 1...1_000_000) { maximumStreams = streams }
        if let interval = try settings.integer(Settings.streamPingInterval, in: 100...3_600_000) { streamPingInterval = .milliseconds(interval) }
        if let interval = try settings.integer(Settings.queueHistoryInterval, in: 1_000...600_000) { queueHistoryInterval = .milliseconds(interval) }
        if let enabled = try settings.boolean(Settings.pushEnabled) { push.enabled = enabled }
        if let networks = settings.text(Settings.pushAllowedNetworks) {
            switch IPNetwork.list(networks) {
            case .success(let list): push.addressRules = PushAddressRules(allowedNetworks: list)
            case .failure(let error): throw ConfigurationError("PUSH_ALLOWED_NETWORKS: \(error)")
            }
        }
        if let lease = try settings.integer(Settings.claimLease, in: 100...86_400_000) { claimLease = .milliseconds(lease) }
        if let stores = try settings.boolean(Settings.storeTraceContext) { api.storesTraceContext = stores }
        if let endpoint = settings.text(Settings.otlpTracesEndpoint) ?? settings.text(Settings.otlpEndpoint).map(TracingSettings.tracesEndpoint(base:)) {
            guard endpoint.hasPrefix("http://") || endpoint.hasPrefix("https://") else {
                throw ConfigurationError("OTEL_EXPORTER_OTLP_ENDPOINT must be an http:// or https:// URL (OTLP over HTTP)")
            }
            var tracing = TracingSettings(tracesEndpoint: endpoint)
            switch settings.text(Settings.otlpProtocol) {
            case nil, "http/protobuf": break
            case "http/json": tracing.usesJSON = true
            case let other?: throw ConfigurationError("OTEL_EXPORTER_OTLP_PROTOCOL must be http/protobuf or http/json, not \(other)")
            }
            if let name = settings.text(Settings.otelServiceName) { tracing.serviceName = name }
            self.tracing = tracing
        }
        if let replicas = try settings.integer(Settings.redisWaitReplicas, in: 0...16) { redisWaitReplicas = replicas }
        if let wait = try settings.integer(Settings.redisWaitTimeout, in: 1...60_000) { redisWaitTimeout = .milliseconds(wait) }
        if let prefix = settings.text(Settings.redisKeyPrefix) {
            guard prefix.utf8.allSatisfy({ $0 > 0x20 && $0 < 0x7F && $0 != UInt8(ascii: "{") && $0 != UInt8(ascii: "}") }) else {
                throw ConfigurationError("REDIS_KEY_PREFIX must be printable ASCII without spaces or braces")
            }
            keyPrefix = prefix
        }
        // The host name Kubernetes and Cloud Run set, when no name is given.
        if let replica = settings.text(Settings.replicaID) ?? config.string(forKey: "hostname").flatMap({ $0.isEmpty ? nil : $0 }) {
            replicaID = replica
        }
        try readAccessSettings(settings)
        try readPayloadSettings(settings)
        redis = try Self.redisConfiguration(settings)
        redisAuthentication = try Self.redisAuthentication(settings, redis: redis)
    }

    static func isLoopback(_ host: String) -> Bool {
        host == "localhost" || host == "::1" || host.hasPrefix("127.")
    }

    /// `REDIS_AUTH`: `password` (the default) or `iam`, which takes no password of its own.
    static func redisAuthentication(_ settings: SettingsReader, redis: RedisConfiguration?) throws(ConfigurationError) -> RedisAuthentication {
        switch settings.text(Settings.redisAuth)?.lowercased() ?? "password" {
        case "password":
            return .password
        case "iam":
            guard let redis else {
                throw ConfigurationError("REDIS_AUTH=iam needs REDIS_URL or REDIS_HOST")
            }
            guard redis.password == nil else {
                throw ConfigurationError(
                    "REDIS_AUTH=iam sends an access token from the metadata server as the password; unset REDIS_PASSWORD and the password in REDIS_URL"
                )
            }
            // Memorystore takes the token as the default user's password (`AUTH <token>`).
            guard redis.username == nil else {
                throw ConfigurationError("REDIS_AUTH=iam authenticates as the default user; unset REDIS_USERNAME and the user in REDIS_URL")
            }
            // A token is a bearer credential of the service account: never in clear text on a network.
            let hosts = redis.isCluster ? redis.clusterSeeds.map(\.host) : [redis.host]
            guard redis.tls || hosts.allSatisfy(Self.isLoopback) else {
                throw ConfigurationError("REDIS_AUTH=iam sends an access token: use TLS (rediss:// or rediss+cluster://, or REDIS_TLS=true)")
            }
            let host = settings.text(Settings.gceMetadataHost) ?? GoogleAccessTokenSource.defaultMetadataHost
            guard !host.contains("/"), !host.contains("@"), !host.contains(where: \.isWhitespace) else {
                throw ConfigurationError("GCE_METADATA_HOST must be host or host:port, got '\(host)'")
            }
            return .googleIAM(metadataHost: host)
        case let other:
            throw ConfigurationError("REDIS_AUTH must be password or iam, got '\(other)'")
        }
    }

    /// Reads `environment` as the environment variables it holds (tests, and callers without a
    /// `ConfigReader` of their own).
    public static func fromEnvironment(_ environment: [String: String]) throws -> SkiffConfiguration {
        try SkiffConfiguration(reading: ConfigReader(provider: EnvironmentVariablesProvider(environmentVariables: environment)))
    }

    /// `REDIS_URL`, or else `REDIS_HOST` and its companions; `nil` when neither is set.
    static func redisConfiguration(_ settings: SettingsReader) throws(ConfigurationError) -> RedisConfiguration? {
        var configuration: RedisConfiguration
        if let url = settings.text(Settings.redisURL) {
            do {
                configuration = try RedisConfiguration(url: url)
            } catch let error as RedisClientError {
                throw ConfigurationError(error.detail)
            } catch {
                throw ConfigurationError("REDIS_URL: \(error)")
            }
        } else if let host = settings.text(Settings.redisHost) {
            configuration = RedisConfiguration(host: host)
            if let port = try settings.integer(Settings.redisPort, in: 1...65535) { configuration.port = port }
            configuration.username = settings.text(Settings.redisUsername)
            configuration.tls = try settings.boolean(Settings.redisTLS) ?? false
        } else {
            return nil
        }
        if configuration.password == nil { configuration.password = settings.text(Settings.redisPassword) }
        configuration.tlsCAFile = settings.text(Settings.redisTLSCAFile)
        configuration.tlsServerName = settings.text(Settings.redisTLSServerName)
        configuration.tlsSkipHostnameVerification = try settings.boolean(Settings.redisTLSSkipHostnameVerification) ?? false
        if let timeout = try settings.integer(Settings.redisCommandTimeout, in: 1...3_600_000) { configuration.commandTimeout = .milliseconds(timeout) }
        if let timeout = try settings.integer(Settings.redisConnectTimeout, in: 1...3_600_000) { configuration.connectTimeout = .milliseconds(timeout) }
        return configuration
    }
}
