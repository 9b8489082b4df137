import ArgumentParser
import Configuration
import Foundation
import Logging
import Metrics
import Prometheus
import SkiffAPI
import SystemPackage

/// `skiff serve`: every setting (``Settings``) is a flag, an environment variable and a key of an
/// optional JSON settings file; a flag wins over the environment, which wins over the file.
struct Serve: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Serve the HTTP API.",
        discussion: "Settings, as flag / environment variable (default): meaning. A flag wins over the environment, "
            + "which wins over the JSON settings file.\n\n" + Settings.help
    )

    @Argument(parsing: .allUnrecognized, help: "Settings as --flag value or --flag=value (listed below).")
    var settings: [String] = []

    func run() async throws {
        let config: ConfigReader
        do {
            config = try await Self.configReader(flags: settings)
        } catch let error as ConfigurationError {
            throw ValidationError(error.description)
        }
        let reader = SettingsReader(config)
        let level = try Self.logLevel(reader.text(Settings.logLevel))
        let json = try Self.isJSONLogFormat(reader.text(Settings.logFormat))
        LoggingSystem.bootstrap { label in
            var handler: any LogHandler = json ? JSONLogHandler(label: label) : StreamLogHandler.standardOutput(label: label)
            handler.logLevel = level
            return handler
        }
        var logger = Logger(label: "skiff")
        logger.logLevel = level

        let configuration: SkiffConfiguration
        do {
            configuration = try SkiffConfiguration(reading: config)
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
                "redis.auth": "\(configuration.redisAuthentication == .password ? "password" : "iam")",
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

    /// Flags, then the environment, then the settings file the two name (if any).
    static func configReader(flags: [String]) async throws -> ConfigReader {
        let arguments = InMemoryProvider(name: "flags", values: try Settings.parseFlags(flags))
        let environment = EnvironmentVariablesProvider()
        let first = ConfigReader(providers: [arguments, environment])
        guard let path = SettingsReader(first).text(Settings.settingsFile) else { return first }
        let file: FileProvider<JSONSnapshot>
        do {
            file = try await FileProvider<JSONSnapshot>(filePath: FilePath(path))
        } catch {
            throw ConfigurationError("SKIFF_SETTINGS_FILE: cannot read '\(path)': \(error)")
        }
        return ConfigReader(providers: [arguments, environment, file])
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
        guard let raw else { return .info }
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
