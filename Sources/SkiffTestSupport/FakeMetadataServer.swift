import HTTPTypes
public import Hummingbird
import HummingbirdTesting
import NIOCore
import Synchronization

/// Google's metadata server as far as access tokens go, on a loopback port: it answers `GET
/// /computeMetadata/v1/instance/service-accounts/default/token` with the token the test set, and
/// like the real one refuses a request without `Metadata-Flavor: Google` (403) and marks its
/// answers with that header.
public final class FakeMetadataServer: Sendable {
    /// What the next token request gets.
    public enum Answer: Sendable {
        case token(String, expiresIn: Int)
        /// A status other than 200, with this body.
        case failure(status: Int, body: String)
        /// A 200 without `Metadata-Flavor: Google` (not the metadata server).
        case withoutFlavor(String)
        /// A 200 whose head comes at once and whose body never ends (a stalled server).
        case stalledBody
    }

    private struct State {
        var answer: Answer = .token("token-1", expiresIn: 3599)
        var requests = 0
        var refusedWithoutFlavor = 0
    }

    private let state = Mutex(State())

    public init() {}

    /// Token requests answered (refused ones not counted).
    public var requests: Int { state.withLock { $0.requests } }
    /// Requests that came without `Metadata-Flavor: Google`.
    public var refusedWithoutFlavor: Int { state.withLock { $0.refusedWithoutFlavor } }

    public func answer(with answer: Answer) {
        state.withLock { $0.answer = answer }
    }

    /// Runs `body` with the server listening; the argument is its `host:port` (what
    /// `GCE_METADATA_HOST` holds).
    public func run<T: Sendable>(_ body: @Sendable (String) async throws -> T) async throws -> T {
        let router = Router()
        router.get("/computeMetadata/v1/instance/service-accounts/default/token") { request, _ -> Response in
            guard request.headers[HTTPField.Name("Metadata-Flavor")!] == "Google" else {
                self.state.withLock { $0.refusedWithoutFlavor += 1 }
                return Response(status: .forbidden, body: .init(byteBuffer: ByteBuffer(string: "Missing Metadata-Flavor:Google header.")))
            }
            let answer = self.state.withLock { state in
                state.requests += 1
                return state.answer
            }
            var headers = HTTPFields()
            headers[.contentType] = "application/json"
            switch answer {
            case .token(let token, let expiresIn):
                headers[HTTPField.Name("Metadata-Flavor")!] = "Google"
                let json = #"{"access_token":"\#(token)","expires_in":\#(expiresIn),"token_type":"Bearer"}"#
                return Response(status: .ok, headers: headers, body: .init(byteBuffer: ByteBuffer(string: json)))
            case .failure(let status, let body):
                headers[HTTPField.Name("Metadata-Flavor")!] = "Google"
                return Response(status: .init(code: status), headers: headers, body: .init(byteBuffer: ByteBuffer(string: body)))
            case .withoutFlavor(let body):
                return Response(status: .ok, headers: headers, body: .init(byteBuffer: ByteBuffer(string: body)))
            case .stalledBody:
                headers[HTTPField.Name("Metadata-Flavor")!] = "Google"
                return Response(
                    status: .ok, headers: headers,
                    body: ResponseBody { writer in
                        try await writer.write(ByteBuffer(string: #"{"access_token":"#))
                        // Longer than any test's request timeout, short enough that the
                        // server's graceful shutdown (which waits for this handler) is quick.
                        try await Task.sleep(for: .seconds(3))
                        try await writer.finish(nil)
                    })
            }
        }
        let app = Application(router: router, configuration: .init(address: .hostname("127.0.0.1", port: 0)))
        return try await app.test(.live) { client in
            guard let port = client.port else { throw FakeMetadataServerError() }
            return try await body("127.0.0.1:\(port)")
        }
    }
}

struct FakeMetadataServerError: Error, CustomStringConvertible {
    var description: String { "the fake metadata server has no port" }
}
