import Foundation
public import Testing

/// The backends a suite runs against: memory always, Redis and a Redis Cluster whenever the
/// harness provides them (always under `make test`).
public enum BackendKind: String, CaseIterable, CustomTestStringConvertible, Sendable {
    case memory
    case redis
    case redisCluster

    public var testDescription: String { rawValue }

    /// Every backend the harness provides, or those named in `SKIFF_TEST_BACKENDS` (for example
    /// `redisCluster`: `make test` runs the suites once for memory and Redis and once more for the
    /// cluster, so that two cores never carry three backends' timing tests at once).
    public static var available: [BackendKind] {
        if let named = ProcessInfo.processInfo.environment["SKIFF_TEST_BACKENDS"], !named.isEmpty {
            return named.split(separator: ",").map { name in
                guard let kind = BackendKind(rawValue: String(name)) else { preconditionFailure("SKIFF_TEST_BACKENDS: unknown backend '\(name)'") }
                return kind
            }
        }
        return [.memory] + (TestEnvironment.hasRedis ? [.redis] : []) + (TestEnvironment.hasRedisCluster ? [.redisCluster] : [])
    }

    /// Either Redis kind.
    public var isRedis: Bool { self != .memory }

    /// The Redis URL of a Redis kind.
    public var redisURL: String? {
        switch self {
        case .memory: nil
        case .redis: TestEnvironment.redisURL
        case .redisCluster: TestEnvironment.redisClusterURL
        }
    }
}
