import HTTPTypes
import Hummingbird
import NIOCore
import Synchronization
import Testing

/// A push endpoint for the tests: an HTTP server on a free loopback port that records every
/// request and answers what the test's `respond` says (a status, after any wait it likes).
final class PushReceiver: Sendable {
    struct Received: Sendable {
        let headers: HTTPFields
        let body: ByteBuffer
        var text: String { String(buffer: body) }
        func header(_ name: String) -> String? { headers[HTTPField.Name(name)!] }
    }

    private let requests = Mutex<[Received]>([])
    let port: Int

    private init(port: Int) { self.port = port }

    var url: String { "http://127.0.0.1:\(port)/hook" }
    var received: [Received] { requests.withLock { $0 } }
    func received(messageID: String) -> [Received] { received.filter { $0.header("Skiff-Message-Id") == messageID } }

    /// Runs `body` with a receiver that answers each request with `respond(request, its index
    /// among the requests for the same message id)`.
    static func with<T: Sendable>(
        respond: @escaping @Sendable (Received, Int) async -> HTTPResponse.Status = { _, _ in .noContent },
        _ body: (PushReceiver) async throws -> T
    ) async throws -> T {
        let box = Mutex<PushReceiver?>(nil)
        let router = Router()
        router.post("/hook") { request, _ -> Response in
            let bytes = try await request.body.collect(upTo: 4 << 20)
            let received = Received(headers: request.headers, body: bytes)
            guard let receiver = box.withLock({ $0 }) else { return Response(status: .serviceUnavailable) }
            let index = receiver.requests.withLock { requests in
                defer { requests.append(received) }
                return requests.filter { $0.header("Skiff-Message-Id") == received.header("Skiff-Message-Id") }.count
            }
            return Response(status: await respond(received, index))
        }
        let (ports, continuation) = AsyncStream.makeStream(of: Int.self)
        let app = Application(
            router: router,
            configuration: .init(address: .hostname("127.0.0.1", port: 0)),
            onServerRunning: { channel in continuation.yield(channel.localAddress?.port ?? 0) }
        )
        let server = Task { try await app.runService(gracefulShutdownSignals: []) }
        defer { server.cancel() }
        var iterator = ports.makeAsyncIterator()
        let receiver = PushReceiver(port: try #require(await iterator.next()))
        box.withLock { $0 = receiver }
        return try await body(receiver)
    }
}
