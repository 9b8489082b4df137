import ArgumentParser
import Foundation
import Logging
import Metrics
import Prometheus
import SkiffAPI

/// `skiff serve`: every setting is an environment variable; a flag overrides it.
struct Serve: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Serve the HTTP API. Every flag can also be set by the environment variable in its help."
    )

    @Option(help: "Address to listen on (env HOST, default 0.0.0.0).") var host: String?
    @Option(help: "Port to listen on (env PORT, default 8080).") var port: Int?
    @Option(help: "Redis URL, redis:// or rediss:// (env REDIS_URL; or REDIS_HOST, REDIS_PORT, REDIS_PASSWORD). Without it, queues live in memory.")
    var redisURL: String?
    @Option(help: "PEM file with the CA that signs Redis's TLS certificate (env REDIS_TLS_CA_FILE).") var redisTLSCAFile: String?
    @Option(help: "Wait in ms when a GET gives no timeout (env DEFAULT_TIMEOUT, default 10000).") var defaultTimeout: Int?
    @Option(help: "Largest message body in bytes; larger ones get 413 (env MAX_MESSAGE_BYTES, default 1048576).") var maxMessageBytes: Int?
    @Option(help: "Ms before messages claimed by a crashed replica return to their queue (env CLAIM_LEASE_MS, default 30000).")
    var claimLeaseMs: Int?
    @Option(help: "Deadline in ms for each Redis command (env REDIS_COMMAND_TIMEOUT_MS, default 800).") var redisCommandTimeoutMs: Int?
    @Option(help: "Prefix of every Redis key (env REDIS_KEY_PREFIX, default skiff).") var redisKeyPrefix: String?
    @Option(help: "Redis replicas that must confirm a message before POST answers 201 (env REDIS_WAIT_REPLICAS, default 0).")
    var redisWaitReplicas: Int?
    @Option(help: "Ms a POST waits for those replicas (env REDIS_WAIT_TIMEOUT_MS, default 100).") var redisWaitTimeoutMs: Int?
    @Option(help: "Name of this replica in logs and /health (env REPLICA_ID, default the host name).") var replicaId: String?
    @Option(help: "trace, debug, info, notice, warning, error or critical (env LOG_LEVEL, default info).") var logLevel: String?
    @Option(help: "json (Cloud Logging fields) or text (env LOG_FORMAT, default json).") var logFormat: String?
    // No flag for SKIFF_API_KEYS itself: a secret on the command line is readable by every local user.
    @Option(
        help: "JSON file of API keys, e.g. a mounted secret (env SKIFF_API_KEYS_FILE; or the document itself in SKIFF_API_KEYS). Without keys, open."
    )
    var apiKeysFile: String?
    @Option(help: "true: GET /metrics needs a key with the admin scope when keys are configured (env METRICS_REQUIRE_AUTH, default true).")
    var metricsRequireAuth: String?
    @Option(help: "Requests per second per API key and queue, in this replica's memory; 0 is off (env RATE_LIMIT_PER_SECOND, default 0).")
    var rateLimitPerSecond: String?
    @Option(help: "Bucket size of the rate limit (env RATE_LIMIT_BURST, default the rate rounded up).") var rateLimitBurst: Int?
    @Option(help: "true: one JSON log line per request at info (env ACCESS_LOG, default true).") var accessLog: String?
    @Option(help: "true: a plain single-message POST skips the router when no keys or rate limits apply (env FAST_PATH, default true).")
    var fastPath: String?

    func run() async throws {
        var environment = ProcessInfo.processInfo.environment
        let flags: [(String, String?)] = [
            ("HOST", host), ("PORT", port.map(String.init)), ("REDIS_URL", redisURL), ("REDIS_TLS_CA_FILE", redisTLSCAFile),
            ("DEFAULT_TIMEOUT", defaultTimeout.map(String.init)), ("MAX_MESSAGE_BYTES", maxMessageBytes.map(String.init)),
            ("CLAIM_LEASE_MS", claimLeaseMs.map(String.init)), ("REDIS_COMMAND_TIMEOUT_MS", redisCommandTimeoutMs.map(String.init)),
            ("REDIS_KEY_PREFIX", redisKeyPrefix), ("REDIS_WAIT_REPLICAS", redisWaitReplicas.map(String.init)),
            ("REDIS_WAIT_TIMEOUT_MS", redisWaitTimeoutMs.map(String.init)), ("REPLICA_ID", replicaId), ("LOG_LEVEL", logLevel), ("LOG_FORMAT", logFormat),
            ("SKIFF_API_KEYS_FILE", apiKeysFile), ("METRICS_REQUIRE_AUTH", metricsRequireAuth), ("RATE_LIMIT_PER_SECOND", rateLimitPerSecond),
            ("RATE_LIMIT_BURST", rateLimitBurst.map(String.init)), ("ACCESS_LOG", accessLog), ("FAST_PATH", fastPath),
        ]
        if apiKeysFile != nil { environment["SKIFF_API_KEYS"] = nil }
        for case (let name, let value?) in flags { environment[name] = value }

        let level = try Self.logLevel(environment["LOG_LEVEL"])
        let json = try Self.isJSONLogFormat(environment["LOG_FORMAT"])
        LoggingSystem.bootstrap { label in
            var handler: any LogHandler = json ? JSONLogHandler(label: label) : StreamLogHandler.standardOutput(label: label)
            handler.logLevel = level
            return handler
        }
        var logger = Logger(label: "skiff")
        logger.logLevel = level

        let configuration: SkiffConfiguration
        do {
            configuration = try SkiffConfiguration.fromEnvironment(environment)
        } catch let error as ConfigurationError {
            throw ValidationError(error.description)
        }
        logger[metadataKey: "replica.id"] = .string(configuration.replicaID)
        logger.info(
            "starting skiff",
            metadata: [
                "http.port": "\(configuration.port)",
                "backend": "\(configuration.redis == nil ? "memory" : "redis")",
                "redis.host": "\(configuration.redis?.host ?? "-")",
                "redis.tls": "\(configuration.redis?.tls ?? false)",
            ]
        )
        if configuration.apiKeys.isEmpty {
            logger.warning(
                "no API keys configured (SKIFF_API_KEYS or SKIFF_API_KEYS_FILE): every queue is open to anyone who can reach this port"
            )
        } else {
            logger.info(
                "API keys loaded",
                metadata: [
                    "auth.keys": "\(configuration.apiKeys.map(\.grant.keyName).joined(separator: ","))",
                    "metrics.require_auth": "\(configuration.metricsRequireAuth)",
                ]
            )
        }
        if let rateLimit = configuration.rateLimit {
            logger.info(
                "rate limiting per API key and queue, in this replica's memory",
                metadata: ["rate_limit.per_second": "\(rateLimit.requestsPerSecond)", "rate_limit.burst": "\(rateLimit.burst)"]
            )
        }
        let registry = PrometheusCollectorRegistry()
        MetricsSystem.bootstrap(Self.metricsFactory(registry: registry))
        let app = buildApplication(configuration: configuration, logger: logger, metricsFactory: MetricsSystem.factory, metricsExposition: registry)
        try await app.runService()
    }

    /// The Prometheus factory behind swift-metrics, with histogram buckets that fit each metric:
    /// HTTP requests include long-polls of up to a minute; Redis commands are usually sub-millisecond.
    static func metricsFactory(registry: PrometheusCollectorRegistry) -> PrometheusMetricsFactory {
        var factory = PrometheusMetricsFactory(registry: registry)
        factory.durationHistogramBuckets["skiff_http_request_duration_seconds"] = [
            .milliseconds(1), .milliseconds(5), .milliseconds(10), .milliseconds(25), .milliseconds(50), .milliseconds(100),
            .milliseconds(250), .milliseconds(500), .seconds(1), .milliseconds(2500), .seconds(5), .seconds(10), .seconds(30), .seconds(60),
        ]
        factory.durationHistogramBuckets["skiff_redis_command_duration_seconds"] = [
            .microseconds(250), .microseconds(500), .milliseconds(1), .milliseconds(2), .milliseconds(5), .milliseconds(10),
            .milliseconds(25), .milliseconds(50), .milliseconds(100), .milliseconds(250), .milliseconds(500), .seconds(1), .seconds(5),
            .seconds(30), .seconds(60),
        ]
        return factory
    }

    static func logLevel(_ raw: String?) throws -> Logger.Level {
        guard let raw, !raw.isEmpty else { return .info }
        guard let level = Logger.Level(rawValue: raw.lowercased()) else {
            throw ValidationError("LOG_LEVEL must be one of trace, debug, info, notice, warning, error, critical; got '\(raw)'")
        }
        return level
    }

    static func isJSONLogFormat(_ raw: String?) throws -> Bool {
        switch raw?.lowercased() {
        case nil, "", "json": return true
        case "text": return false
        default: throw ValidationError("LOG_FORMAT must be json or text; got '\(raw ?? "")'")
        }
    }
}
