import HTTPTypes
import Hummingbird
import Logging
import Metrics
import Prometheus
public import SkiffAPI
import SkiffRedis
import SkiffTestSupport
import Synchronization
import Testing

// The executable makes the same conformance; tests do not link it.
extension PrometheusCollectorRegistry: MetricsExposition {}

/// API keys shared by the access-control, rate-limit and metrics tests.
enum TestKeys {
    static let send = "send-key-0123456789abcdef"
    static let receive = "receive-key-0123456789abcdef"
    static let admin = "admin-key-0123456789abcdef"
    /// send + receive, confined to queues starting with `orders-`.
    static let orders = "orders-key-0123456789abcdef"
    /// admin, confined to queues starting with `orders-`.
    static let ordersAdmin = "orders-admin-key-0123456789"

    static let all: [APIKey] = [
        APIKey(secret: send, name: "sender", scopes: [.send]),
        APIKey(secret: receive, name: "receiver", scopes: [.receive]),
        APIKey(secret: admin, name: "admin", scopes: [.admin]),
        APIKey(secret: orders, name: "orders", scopes: [.send, .receive], queuePrefix: "orders-"),
        APIKey(secret: ordersAdmin, name: "orders-admin", scopes: [.admin], queuePrefix: "orders-"),
    ]

    static func bearer(_ key: String) -> HTTPFields { [.authorization: "Bearer \(key)"] }
}

/// A replica like `makeApplication`, with its metrics going to `metricsFactory` and `/metrics`
/// served from `registry` when one is given.
func makeObservedApplication(
    _ kind: BackendKind = .memory,
    metricsFactory: any MetricsFactory,
    registry: PrometheusCollectorRegistry? = nil,
    logger: Logger? = nil,
    configure: (inout SkiffConfiguration) -> Void = { _ in }
) throws -> SkiffApplication {
    var configuration = SkiffConfiguration(host: "127.0.0.1", port: 0)
    if kind.isRedis {
        configuration.redis = try RedisConfiguration(url: try #require(kind.redisURL))
        configuration.redis?.commandTimeout = .seconds(5)
        configuration.redis?.connectTimeout = .seconds(5)
    }
    // As in makeApplication: only the push tests deliver pushes.
    configuration.push.enabled = false
    configure(&configuration)
    let logger =
        logger
        ?? {
            var quiet = Logger(label: "skiff-test")
            quiet.logLevel = .warning
            return quiet
        }()
    return buildApplication(configuration: configuration, logger: logger, metricsFactory: metricsFactory, metricsExposition: registry)
}

/// Keeps every log record, for tests that check what is logged.
struct RecordingLogHandler: LogHandler {
    struct Record: Sendable {
        let level: Logger.Level
        let message: String
        let metadata: Logger.Metadata
    }

    final class Records: Sendable {
        let all = Mutex<[Record]>([])
    }

    let records: Records
    var metadata: Logger.Metadata = [:]
    var logLevel: Logger.Level = .info

    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    func log(event: LogEvent) {
        var merged = metadata
        if let extra = event.metadata { merged.merge(extra) { $1 } }
        let record = Record(level: event.level, message: "\(event.message)", metadata: merged)
        records.all.withLock { $0.append(record) }
    }

    /// A logger at `info` whose records land in the returned store.
    static func logger() -> (Logger, Records) {
        let records = Records()
        var logger = Logger(label: "recording") { _ in RecordingLogHandler(records: records) }
        logger.logLevel = .info
        return (logger, records)
    }
}
