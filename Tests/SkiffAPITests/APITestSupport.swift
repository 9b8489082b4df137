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

enum BackendKind: String, CaseIterable, CustomTestStringConvertible, Sendable {
    case memory
    case redis

    var testDescription: String { rawValue }

    static var available: [BackendKind] { TestEnvironment.hasRedis ? allCases : [.memory] }
}

/// Builds a replica on a free port over the given backend kind.
func makeApplication(
    _ kind: BackendKind,
    redisURL: String? = TestEnvironment.redisURL,
    configure: (inout SkiffConfiguration) -> Void = { _ in }
) throws -> SkiffApplication {
    var configuration = SkiffConfiguration(host: "127.0.0.1", port: 0)
    if kind == .redis {
        configuration.redis = try RedisConfiguration(url: try #require(redisURL))
    }
    configure(&configuration)
    var logger = Logger(label: "skiff-test")
    logger.logLevel = .warning
    return buildApplication(configuration: configuration, logger: logger)
}

/// A bare HTTP/1.1 client on its own connection, for concurrency and disconnect tests.
struct Probe {
    let port: Int

    func request(_ method: HTTPRequest.Method, _ uri: String, body: String? = nil, timeout: Duration = .seconds(70)) async throws -> TestClient.Response {
        let client = TestClient(host: "127.0.0.1", port: port, configuration: .init(timeout: timeout))
        client.connect()
        defer { Task { try? await client.shutdown() } }
        return try await client.execute(.init(uri, method: method, body: body.map { ByteBuffer(string: $0) }))
    }

    func post(_ queue: String, _ body: String) async throws -> TestClient.Response {
        try await request(.post, "/api/\(queue)", body: body)
    }

    func get(_ queue: String, timeout milliseconds: Int) async throws -> TestClient.Response {
        try await request(.get, "/api/\(queue)?timeout=\(milliseconds)")
    }

    /// Starts a long-poll and closes the connection after `after`, like a client that gave up.
    func abandonedGet(_ queue: String, timeout milliseconds: Int, after: Duration) async throws {
        let client = TestClient(host: "127.0.0.1", port: port)
        client.connect()
        try await client.executeAndDontWaitForResponse(.init("/api/\(queue)?timeout=\(milliseconds)", method: .get))
        try await Task.sleep(for: after)
        try await client.shutdown()
    }
}

extension TestClient.Response {
    var text: String { body.map { String(buffer: $0) } ?? "" }
}

extension TestResponse {
    var text: String { String(buffer: body) }
}
