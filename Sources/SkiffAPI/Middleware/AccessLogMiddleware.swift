public import Hummingbird
import Logging

/// One `info` line per request once its response is written: `http.method`, `http.route` (the
/// pattern, e.g. `/api/{queue}`), `url.path`, `http.status`, `http.duration_ms`, and `request.id`
/// from ``RequestIDMiddleware`` (which must run first). The JSON log handler turns it into one
/// JSON object. Never logs headers, so keys stay out of logs.
public struct AccessLogMiddleware<Context: RequestContext>: RouterMiddleware {
    public init() {}

    public func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        let logger = context.logger
        guard logger.logLevel <= .info else { return try await next(request, context) }
        let path = request.uri.path
        return try await ResponseObservation.observe(request, context: context, next: next) { observation in
            observation.logAccess(path: path, logger: logger)
        }
    }
}

extension ResponseObservation {
    /// The access log line of one finished request.
    func logAccess(path: String, logger: Logger) {
        let (seconds, attoseconds) = duration.components
        let milliseconds = Double(seconds) * 1000 + Double(attoseconds) / 1e15
        logger.info(
            "request",
            metadata: [
                "http.method": .string(method),
                "http.route": .string(route),
                "url.path": .string(path),
                "http.status": .string(String(status)),
                "http.duration_ms": .string(String(Double(Int(milliseconds * 1000)) / 1000)),
            ]
        )
    }
}
