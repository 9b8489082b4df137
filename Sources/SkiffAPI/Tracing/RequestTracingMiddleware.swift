public import Hummingbird
import Tracing

/// A server span per routed request (`POST /api/{queue}`), a child of the caller's
/// `traceparent` when it sent one, and current while the routes run, so that the messaging and
/// Redis spans under it join the caller's trace. Installed only with tracing on; the fast path is
/// then off, so every request passes here.
public struct RequestTracingMiddleware<Context: RequestContext>: RouterMiddleware {
    let tracing: MessageTracing

    public init(tracing: MessageTracing) {
        self.tracing = tracing
    }

    public func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        let method = request.method.rawValue
        let span = tracing.tracer.startSpan(method, context: tracing.context(of: request.headers), ofKind: .server)
        defer { span.end() }
        span.updateAttributes { attributes in
            attributes["http.request.method"] = method
            attributes["url.path"] = request.uri.path
            attributes["user_agent.original"] = request.headers[.userAgent]
            attributes["http.request.body.size"] = request.headers[.contentLength].flatMap { Int($0) }
        }
        do {
            let response = try await ServiceContext.withValue(span.context) { try await next(request, context) }
            finish(span, method: method, route: context, status: response.status.code)
            return response
        } catch {
            let status = APIError(from: error).status.code
            finish(span, method: method, route: context, status: status)
            if status >= 500 { span.recordError(error) }
            throw error
        }
    }

    private func finish(_ span: any Span, method: String, route context: Context, status: Int) {
        let route = ResponseObservation.route(of: context)
        span.operationName = "\(method) \(route)"
        span.updateAttributes { attributes in
            attributes["http.route"] = route
            attributes["http.response.status_code"] = status
        }
        // Server spans mark 5xx only: a 4xx is the client's mistake, not this server's failure.
        if status >= 500 { span.setStatus(SpanStatus(code: .error)) }
    }
}
