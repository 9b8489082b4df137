import Foundation

/// What the test harness (`make test`) provides: Redis servers on free loopback ports.
///
/// Redis-backed tests run when `SKIFF_TEST_REDIS_URL` is set. Under CI (`CI=true`) it must be set:
/// a missing Redis fails the run instead of silently skipping tests.
public enum TestEnvironment {
    public static var redisURL: String? { nonEmpty("SKIFF_TEST_REDIS_URL") }
    /// A Redis that requires `AUTH` with a password (`redis://:password@host:port`).
    public static var redisPasswordURL: String? { nonEmpty("SKIFF_TEST_REDIS_PASSWORD_URL") }
    /// A Redis behind TLS (`rediss://...`) and the CA file that signed it.
    public static var redisTLSURL: String? { nonEmpty("SKIFF_TEST_REDIS_TLS_URL") }
    public static var redisTLSCAFile: String? { nonEmpty("SKIFF_TEST_REDIS_TLS_CA_FILE") }

    /// A Cloud Storage emulator (`http://127.0.0.1:PORT`, gcp-storage-emulator) and the bucket it
    /// serves, for the Cloud Storage client and payload store. Required under CI, like Redis.
    public static var gcsURL: String? { nonEmpty("SKIFF_TEST_GCS_URL") }
    public static var gcsBucket: String { nonEmpty("SKIFF_TEST_GCS_BUCKET") ?? "skiff-test" }

    public static var hasGCS: Bool {
        if gcsURL != nil { return true }
        precondition(!isCI, "CI=true but SKIFF_TEST_GCS_URL is not set: run the tests through `make test`")
        return false
    }

    public static var isCI: Bool { ProcessInfo.processInfo.environment["CI"] == "true" }

    /// A Redis Cluster (`redis+cluster://...`, started by `scripts/redis-cluster.sh`) and the
    /// script that manages it, for the cluster client's tests. Required under CI, like Redis.
    public static var redisClusterURL: String? { nonEmpty("SKIFF_TEST_REDIS_CLUSTER_URL") }
    /// Its state directory (`--dir`), when not the script's default.
    public static var redisClusterDirectory: String? { nonEmpty("SKIFF_TEST_REDIS_CLUSTER_DIR") }

    public static var hasRedisCluster: Bool {
        if redisClusterURL != nil { return true }
        precondition(!isCI, "CI=true but SKIFF_TEST_REDIS_CLUSTER_URL is not set: run the tests through `make test`")
        return false
    }

    /// True when Redis tests should run. Crashes the test run under CI when Redis is missing,
    /// because a skipped Redis suite there would hide regressions.
    public static var hasRedis: Bool {
        if redisURL != nil { return true }
        precondition(!isCI, "CI=true but SKIFF_TEST_REDIS_URL is not set: run the tests through `make test`")
        return false
    }

    /// A name no other test (or earlier run) uses, for queues and keys.
    public static func uniqueName(_ prefix: String) -> String {
        "\(prefix)-\(UUID().uuidString.prefix(8).lowercased())"
    }

    private static func nonEmpty(_ name: String) -> String? {
        guard let value = ProcessInfo.processInfo.environment[name], !value.isEmpty else { return nil }
        return value
    }
}
