public import Hummingbird
import NIOCore
public import SkiffQueue

/// `GET /health` (liveness, with backend state), `GET /ready` (readiness) and `GET /openapi.yaml`.
public struct HealthController<Backend: QueueBackend>: Sendable {
    public typealias Context = SkiffRequestContext
    let backend: Backend
    let replicaID: String

    public init(backend: Backend, replicaID: String) {
        self.backend = backend
        self.replicaID = replicaID
    }

    public func addRoutes(to router: Router<Context>) {
        router.get("/health", use: health)
        router.get("/ready", use: ready)
        router.addMethodNotAllowed(path: "/health", allowed: [.get])
        router.addMethodNotAllowed(path: "/ready", allowed: [.get])
        router.get("/openapi.yaml") { _, _ -> Response in
            let body = ByteBuffer(string: OpenAPIDocument.yaml)
            return Response(
                status: .ok,
                headers: [.contentType: "application/yaml; charset=utf-8", .contentLength: String(body.readableBytes)],
                body: .init(byteBuffer: body)
            )
        }
        router.addMethodNotAllowed(path: "/openapi.yaml", allowed: [.get])
    }

    @Sendable func health(request: Request, context: Context) async throws -> Response {
        let health = await backend.health()
        var fields = [
            #""status":"# + JSONText.quoted(health.isHealthy ? "healthy" : "unhealthy"),
            #""backend":"# + JSONText.quoted(health.backend),
            #""replica":"# + JSONText.quoted(replicaID),
        ]
        for (key, value) in health.details.sorted(by: { $0.key < $1.key }) {
            fields.append(JSONText.quoted(key) + ":" + JSONText.quoted(value))
        }
        return QueueController<Backend>.json(status: health.isHealthy ? .ok : .serviceUnavailable, "{" + fields.joined(separator: ",") + "}")
    }

    @Sendable func ready(request: Request, context: Context) async throws -> Response {
        let health = await backend.health()
        if health.isHealthy {
            return QueueController<Backend>.json(status: .ok, #"{"status":"ready"}"#)
        }
        return QueueController<Backend>.json(status: .serviceUnavailable, #"{"status":"not ready"}"#)
    }
}
