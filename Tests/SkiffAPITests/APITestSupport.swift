import HTTPTypes
import Hummingbird
import HummingbirdTesting
import Logging
import NIOCore
import NIOPosix
import ServiceLifecycle
import SkiffAPI
import SkiffQueue
import SkiffRedis
import SkiffTestSupport
import Testing

/// Builds a replica on a free port over the given backend kind.
func makeApplication(
    _ kind: BackendKind,
    redisURL: String? = nil,
    configure: (inout SkiffConfiguration) -> Void = { _ in }
) throws -> SkiffApplication {
    var configuration = SkiffConfiguration(host: "127.0.0.1", port: 0)
    if kind.isRedis {
        configuration.redis = try RedisConfiguration(url: try #require(redisURL ?? kind.redisURL))
        // Generous: dozens of tests share two cores. Deadlines have tests of their own.
        configuration.redis?.commandTimeout = .seconds(5)
        configuration.redis?.connectTimeout = .seconds(5)
    }
    // Push delivery consumes every push subscription under the key prefix: only the push tests
    // turn it on, each under a prefix of its own, so no other test's replica takes their messages.
    configuration.push.enabled = false
    configure(&configuration)
    var logger = Logger(label: "skiff-test")
    logger.logLevel = .warning
    return buildApplication(configuration: configuration, logger: logger)
}

extension TestResponse {
    var text: String { String(buffer: body) }
}
