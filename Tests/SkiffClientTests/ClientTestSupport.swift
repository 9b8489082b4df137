import Hummingbird
import HummingbirdTesting
import Logging
import NIOCore
import SkiffAPI
import SkiffClient
import SkiffRedis
import SkiffTestSupport
import Synchronization
import Testing

/// A replica on a free port over the given backend kind, and a client of it, for `body`.
func withServer<T: Sendable>(
    _ kind: BackendKind,
    retry: RetryPolicy = RetryPolicy(maxAttempts: 3, baseDelay: .milliseconds(10), maxDelay: .milliseconds(50)),
    requestTimeout: Duration = .seconds(10),
    _ body: @Sendable (SkiffClient) async throws -> T
) async throws -> T {
    var configuration = SkiffConfiguration(host: "127.0.0.1", port: 0)
    if kind.isRedis {
        configuration.redis = try RedisConfiguration(url: try #require(kind.redisURL))
        configuration.redis?.commandTimeout = .seconds(5)
        configuration.redis?.connectTimeout = .seconds(5)
    }
    configuration.push.enabled = false
    var logger = Logger(label: "skiff-client-test")
    logger.logLevel = .warning
    return try await buildApplication(configuration: configuration, logger: logger).test(.live) { testClient in
        let port = try #require(testClient.port)
        let client = SkiffClient(
            configuration: SkiffClientConfiguration(url: "http://127.0.0.1:\(port)", requestTimeout: requestTimeout, retry: retry))
        do {
            let result = try await body(client)
            try await client.shutdown()
            return result
        } catch {
            try? await client.shutdown()
            throw error
        }
    }
}

/// A stand-in server for the retry rules: it counts requests by method and path and answers
/// what `respond` says (after any wait it likes).
final class StubServer: Sendable {
    private let counts = Mutex<[String: Int]>([:])

    func count(_ method: String, _ path: String) -> Int { counts.withLock { $0["\(method) \(path)"] ?? 0 } }

    static func with<T: Sendable>(
        respond: @escaping @Sendable (_ request: Request, _ attempt: Int) async throws -> Response,
        _ body: @Sendable (StubServer, String) async throws -> T
    ) async throws -> T {
        let stub = StubServer()
        let router = Router()
        let handle: @Sendable (Request, BasicRequestContext) async throws -> Response = { request, _ in
            let key = "\(request.method) \(request.uri.path)"
            let attempt = stub.counts.withLock { counts in
                counts[key, default: 0] += 1
                return counts[key]!
            }
            return try await respond(request, attempt)
        }
        router.on("**", method: .get, use: handle)
        router.on("**", method: .post, use: handle)
        router.on("**", method: .delete, use: handle)
        let app = Application(router: router, configuration: .init(address: .hostname("127.0.0.1", port: 0)))
        return try await app.test(.live) { client in
            try await body(stub, "http://127.0.0.1:\(try #require(client.port))")
        }
    }
}
