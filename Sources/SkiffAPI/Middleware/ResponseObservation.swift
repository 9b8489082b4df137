import Hummingbird

/// What the observing middlewares (access log, HTTP metrics) record about a finished request.
struct ResponseObservation: Sendable {
    let method: String
    /// The matched route pattern (`/api/{queue}`), never the raw path; `unmatched` when no route matched.
    let route: String
    let status: Int
    let duration: Duration

    /// The route label of a request once routing is done: bounded by the number of routes.
    static func route(of context: some RequestContext) -> String {
        switch context.endpointPath {
        case nil, "NotFound": return "unmatched"
        case let path?: return path
        }
    }

    /// Calls `record` once the response body has been written (or failed to be), so durations
    /// include long-polls and streamed bodies; thrown errors are recorded with the status they
    /// map to and rethrown.
    static func observe<Context: RequestContext>(
        _ request: Request,
        context: Context,
        next: (Request, Context) async throws -> Response,
        record: @escaping @Sendable (ResponseObservation) -> Void
    ) async throws -> Response {
        let start = ContinuousClock.now
        let method = request.method.rawValue
        do {
            var response = try await next(request, context)
            let status = response.status.code
            let body = response.body
            response.body = ResponseBody(contentLength: body.contentLength) { writer in
                do {
                    try await body.write(writer)
                } catch {
                    record(ResponseObservation(method: method, route: route(of: context), status: status, duration: .now - start))
                    throw error
                }
                record(ResponseObservation(method: method, route: route(of: context), status: status, duration: .now - start))
            }
            return response
        } catch {
            let status = APIError(from: error).status.code
            record(ResponseObservation(method: method, route: route(of: context), status: status, duration: .now - start))
            throw error
        }
    }
}
