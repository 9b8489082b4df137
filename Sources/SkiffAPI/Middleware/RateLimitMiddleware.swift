import HTTPTypes
public import Hummingbird
import SkiffQueue

/// Answers 429 with `Retry-After` once a (key, queue) pair has used up its token bucket.
///
/// Runs after ``AccessControlMiddleware`` so it knows the key. Open routes (`/health`, `/ready`,
/// an open `/metrics`) are never limited. Requests naming no valid queue share the key's bucket
/// for queue `""`, so junk names cannot grow the table.
public struct RateLimitMiddleware: RouterMiddleware {
    public typealias Context = SkiffRequestContext
    let limiter: RateLimiter
    let metricsRequireAuth: Bool

    public init(limiter: RateLimiter, metricsRequireAuth: Bool) {
        self.limiter = limiter
        self.metricsRequireAuth = metricsRequireAuth
    }

    public func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        let requirement = AccessPolicy.requirement(method: request.method, path: request.uri.path, metricsRequireAuth: metricsRequireAuth)
        guard case .key(_, let queue) = requirement else { return try await next(request, context) }
        let queueName = queue.flatMap { QueueName($0) }?.rawValue ?? ""
        switch limiter.take(key: context.accessGrant?.keyName ?? "", queue: queueName) {
        case .allowed:
            return try await next(request, context)
        case .limited(let retryAfterSeconds):
            let settings = limiter.settings
            throw APIError(
                .tooManyRequests,
                "rate limit of \(settings.requestsPerSecond) requests per second (burst \(settings.burst)) reached; retry after \(retryAfterSeconds) s",
                headers: [.retryAfter: String(retryAfterSeconds)]
            )
        }
    }
}
