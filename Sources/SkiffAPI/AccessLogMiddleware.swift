import Hummingbird
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
            let (seconds, attoseconds) = observation.duration.components
            let milliseconds = Double(seconds) * 1000 + Double(attoseconds) / 1e15
            logger.info(
                "request",
                metadata: [
                    "http.method": .string(observation.method),
                    "http.route": .string(observation.route),
                    "url.path": .string(path),
                    "http.status": .string(String(observation.status)),
                    "http.duration_ms": .string(String(Double(Int(milliseconds * 1000)) / 1000)),
                ]
            )
        }
    }
}
