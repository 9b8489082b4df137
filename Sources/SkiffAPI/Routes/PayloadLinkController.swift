import HTTPTypes
public import Hummingbird
import NIOCore
public import SkiffQueue

/// `GET /payloads/m/{id}?size=&sha256=&expires=&signature=`: an offloaded body of a filesystem
/// store, by the link a `payload=url` receive handed out (docs/payloads.md). The signature is the
/// credential (no API key): it names one object, the size and SHA-256 the bytes are verified
/// against as they are sent, and the end of the receive's visibility timeout.
///
/// - 200 with the body, streamed; one that turns out corrupted is cut off before its last bytes
///   (the connection closes short of `Content-Length`), never completed.
/// - 403 for a signature that is not this service's or a link past its expiry; 404 when the object
///   is not there (its message was acked or deleted, or the body was lost: a consumer nacks); 503
///   when the store cannot be read.
public struct PayloadLinkController: Sendable {
    public typealias Context = SkiffRequestContext
    let store: FileSystemPayloadStore
    let signer: PayloadURLSigner

    public init(store: FileSystemPayloadStore, signer: PayloadURLSigner) {
        self.store = store
        self.signer = signer
    }

    public func addRoutes(to router: Router<Context>) {
        router.get("/payloads/m/:id", use: fetch)
        router.addMethodNotAllowed(path: "/payloads/m/:id", allowed: [.get])
    }

    @Sendable func fetch(request: Request, context: Context) async throws -> Response {
        let query = request.uri.queryParameters
        let verdict = signer.verify(
            key: "m/" + (context.parameters.get("id") ?? ""), size: String(query["size"] ?? ""), sha256: String(query["sha256"] ?? ""),
            expires: String(query["expires"] ?? ""), signature: String(query["signature"] ?? ""), nowMilliseconds: MessageID.currentMilliseconds())
        switch verdict {
        case .invalid:
            throw APIError(.forbidden, "this payload link is not signed by this service")
        case .expired:
            throw APIError(.forbidden, "this payload link has expired (it lasts its receive's visibility timeout): receive the message again for a new one")
        case .valid(let key, let size, let sha256):
            let body: PayloadBody
            do {
                body = try await store.get(store.pointer(to: key, size: size, sha256: sha256))
            } catch let error as PayloadStoreError where error == .notFound() {
                // Not "acknowledged": a body lost while its message lives looks the same, and a
                // consumer that acked on this would lose the message. Nacking is always safe.
                throw APIError(.notFound, "this payload is not in the store: if you hold its message, nack it")
            } catch let error as PayloadStoreError where error == .unavailable() {
                throw APIError(.serviceUnavailable, "the payload store cannot be read; retry", headers: [.retryAfter: "1"])
            }
            let headers: HTTPFields = [
                .contentType: "application/json", .contentLength: String(size), .cacheControl: "private, no-store",
                HTTPField.Name("X-Content-Type-Options")!: "nosniff",
            ]
            return Response(status: .ok, headers: headers, body: ResponseBody(asyncSequence: body))
        }
    }
}
