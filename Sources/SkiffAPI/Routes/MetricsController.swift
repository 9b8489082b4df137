public import Hummingbird
import NIOCore

/// `GET /metrics`: the Prometheus text exposition. Whether it needs the `admin` scope is the
/// ``AccessPolicy``'s business (`METRICS_REQUIRE_AUTH`).
public struct MetricsController: Sendable {
    public typealias Context = SkiffRequestContext
    let exposition: any MetricsExposition

    public init(exposition: any MetricsExposition) {
        self.exposition = exposition
    }

    public func addRoutes(to router: Router<Context>) {
        router.get("/metrics", use: metrics)
        router.addMethodNotAllowed(path: "/metrics", allowed: [.get])
    }

    @Sendable func metrics(request: Request, context: Context) async throws -> Response {
        var bytes: [UInt8] = []
        bytes.reserveCapacity(16 * 1024)
        exposition.emit(into: &bytes)
        let body = ByteBuffer(bytes: bytes)
        return Response(
            status: .ok,
            headers: [.contentType: "text/plain; version=0.0.4; charset=utf-8", .contentLength: String(body.readableBytes)],
            body: .init(byteBuffer: body)
        )
    }
}
