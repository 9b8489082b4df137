public import HTTPTypes
public import HummingbirdTesting
import NIOCore

/// A bare HTTP/1.1 client on its own connection, for concurrency and disconnect tests.
public struct Probe: Sendable {
    public let port: Int
    /// A loopback address: any of 127.0.0.0/8 reaches a server listening on all of them.
    public let host: String

    public init(port: Int, host: String = "127.0.0.1") {
        self.port = port
        self.host = host
    }

    public func request(_ method: HTTPRequest.Method, _ uri: String, body: String? = nil, timeout: Duration = .seconds(70)) async throws -> TestClient.Response
    {
        let client = TestClient(host: host, port: port, configuration: .init(timeout: timeout))
        client.connect()
        defer { Task { try? await client.shutdown() } }
        return try await client.execute(.init(uri, method: method, body: body.map { ByteBuffer(string: $0) }))
    }

    public func post(_ queue: String, _ body: String) async throws -> TestClient.Response {
        try await request(.post, "/api/\(queue)", body: body)
    }

    public func get(_ queue: String, timeout milliseconds: Int) async throws -> TestClient.Response {
        try await request(.get, "/api/\(queue)?timeout=\(milliseconds)")
    }

    /// Starts a long-poll and closes the connection after `after`, like a client that gave up.
    public func abandonedGet(_ queue: String, timeout milliseconds: Int, after: Duration) async throws {
        let client = TestClient(host: "127.0.0.1", port: port)
        client.connect()
        try await client.executeAndDontWaitForResponse(.init("/api/\(queue)?timeout=\(milliseconds)", method: .get))
        try await Task.sleep(for: after)
        try await client.shutdown()
    }
}

extension TestClient.Response {
    /// The body as text (empty when there is none).
    public var text: String { body.map { String(buffer: $0) } ?? "" }
}
