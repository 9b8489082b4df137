import CoreMetrics
public import Hummingbird
public import Metrics
import Synchronization

/// Records `skiff_http_requests_total` and the `skiff_http_request_duration_seconds` histogram,
/// both labelled `route`, `method` and `status`, once each response is written.
///
/// `route` is the matched route pattern (`/api/{queue}`) or `unmatched`, never the raw path, so the
/// number of series is bounded by routes × methods × statuses.
public struct HTTPMetricsMiddleware<Context: RequestContext>: RouterMiddleware {
    private let metrics: HTTPMetrics

    public init(factory: any MetricsFactory = MetricsSystem.factory) {
        self.metrics = HTTPMetrics(factory: factory)
    }

    public func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        let metrics = self.metrics
        return try await ResponseObservation.observe(request, context: context, next: next) { observation in
            metrics.record(observation)
        }
    }
}

/// The handles of the HTTP metrics, made once per label set.
final class HTTPMetrics: Sendable {
    static let requestsTotal = "skiff_http_requests_total"
    static let requestDuration = "skiff_http_request_duration_seconds"

    private struct Labels: Hashable {
        let route: String
        let method: String
        let status: Int
    }

    private let factory: any MetricsFactory
    private let handles = Mutex<[Labels: (Counter, CoreMetrics.Timer)]>([:])

    init(factory: any MetricsFactory) {
        self.factory = factory
    }

    func record(_ observation: ResponseObservation) {
        let labels = Labels(route: observation.route, method: observation.method, status: observation.status)
        let (counter, timer) = handles.withLock { handles in
            if let known = handles[labels] { return known }
            let dimensions = [("route", labels.route), ("method", labels.method), ("status", String(labels.status))]
            let made = (
                Counter(label: Self.requestsTotal, dimensions: dimensions, factory: factory),
                CoreMetrics.Timer(label: Self.requestDuration, dimensions: dimensions, factory: factory)
            )
            handles[labels] = made
            return made
        }
        counter.increment()
        timer.recordNanoseconds(observation.duration.nanoseconds)
    }
}
