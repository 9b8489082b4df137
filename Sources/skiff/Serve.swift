import ArgumentParser
import Foundation
import Logging
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

    func run() async throws {
        var environment = ProcessInfo.processInfo.environment
        let flags: [(String, String?)] = [
            ("HOST", host), ("PORT", port.map(String.init)), ("REDIS_URL", redisURL), ("REDIS_TLS_CA_FILE", redisTLSCAFile),
            ("DEFAULT_TIMEOUT", defaultTimeout.map(String.init)), ("MAX_MESSAGE_BYTES", maxMessageBytes.map(String.init)),
            ("CLAIM_LEASE_MS", claimLeaseMs.map(String.init)), ("REDIS_COMMAND_TIMEOUT_MS", redisCommandTimeoutMs.map(String.init)),
            ("REDIS_KEY_PREFIX", redisKeyPrefix), ("REDIS_WAIT_REPLICAS", redisWaitReplicas.map(String.init)),
            ("REDIS_WAIT_TIMEOUT_MS", redisWaitTimeoutMs.map(String.init)), ("REPLICA_ID", replicaId), ("LOG_LEVEL", logLevel), ("LOG_FORMAT", logFormat),
        ]
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
        let app = buildApplication(configuration: configuration, logger: logger)
        try await app.runService()
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
